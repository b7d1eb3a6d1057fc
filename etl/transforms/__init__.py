"""Pure transforms: Column -> Column functions (`functions`), DataFrame -> DataFrame transforms
(`cleaning`: typing with reasons, de-duplication; `cdc`: change events). None of them reads
config, creates a session or does I/O; parameterised transforms return
``Callable[[DataFrame], DataFrame]`` for ``df.transform``. A job's own transforms live with the
job (``jobs/<job>.py``), not in the library."""
