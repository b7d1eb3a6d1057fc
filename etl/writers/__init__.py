"""Writers: Delta tables (merge, overwrite of a slice) and the quarantine."""

from etl.writers.delta import DeltaMerge, DeltaOverwrite

__all__ = ["DeltaMerge", "DeltaOverwrite"]
