"""etl: reusable Spark readers, transforms and writers driven by YAML-configured jobs.

Importing the package does no work: no SparkSession, no JVM, no file access. The pieces live in
submodules (`etl.session`, `etl.config`, `etl.readers`, `etl.transforms`, `etl.writers`,
`etl.quality`, `etl.runner`); the command line is `etl` (`etl.cli`). The notebook API
(`etl.notebook`: ``etl.run``, ``etl.table``, ``etl.read``, ``etl.preview``, ``etl.check``,
``etl.load_config``, ``etl.spark``) is imported on first use of one of those names.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Names served lazily from `etl.notebook`, so `import etl` stays free of pyspark.
_NOTEBOOK_API = ("check", "load_config", "preview", "read", "run", "spark", "table")


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK_API:
        return getattr(importlib.import_module("etl.notebook"), name)
    raise AttributeError(f"module 'etl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NOTEBOOK_API])
