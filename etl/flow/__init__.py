"""The flow: how the library runs every job declared in YAML, and keeps its books.

source -> bronze (as landed) -> the job's transforms -> audit (rules from YAML) -> publish
(targets from YAML) -> records (ledger, watermarks, run record, lineage).

* `etl.flow.plan`: the plan made from the configuration, before Spark starts (which sources
  feed which targets, the job's functions imported and checked);
* `etl.flow.landing`: the extract step for every source type (files, JDBC, REST, Kafka, Delta
  change feed, PostgreSQL logical decoding) and what is recorded after the publish;
* `etl.flow.build`: typing, references, the job's transform, de-duplication and the counts;
* `etl.flow.run`: the steps of a run, the audit, the publish and the exports;
* `etl.flow.kafka`, `etl.flow.cdc`: loading Kafka topics into Delta exactly once, and
  applying change feeds.

The library counts rows and checks they reconcile (``read = loaded + quarantined +
filtered``), opens and closes the steps of the run record, and advances the file ledger or a
watermark only after the publish. A job supplies configuration and at most a page of pure
transforms (docs/configuration.md, "Adding a job").
"""

from etl.flow.plan import Plan, make_plan
from etl.flow.run import Replay, preview, references, run_flow

__all__ = ["Plan", "Replay", "make_plan", "preview", "references", "run_flow"]
