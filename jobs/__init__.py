"""The jobs of this project: per job, a module of pure transforms that ``conf/jobs/<job>.yml``
names (``job.transforms``). The YAML declares everything else (sources, bronze, typing, targets,
rules); the flow (`etl.flow`) runs it. A job without business logic has no module here."""
