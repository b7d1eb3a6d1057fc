"""Writers: Delta tables (append, overwrite, merge, SCD2), Parquet, warehouse databases, quarantine."""

from etl.writers.delta import DeltaAppend, DeltaMerge, DeltaOverwrite

__all__ = ["DeltaAppend", "DeltaMerge", "DeltaOverwrite"]
