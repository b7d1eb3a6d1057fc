"""etl: reusable Spark readers, transforms and writers driven by YAML-configured jobs.

Importing the package does no work: no SparkSession, no JVM, no file access. The pieces live in
submodules (`etl.session`, `etl.config`, `etl.readers`, `etl.transforms`, `etl.writers`,
`etl.quality`, `etl.runner`); the command line is `etl` (`etl.cli`).
"""

from __future__ import annotations

__version__ = "0.1.0"
