"""Readers: sources to DataFrames, with what was read (files, offsets) for the run record."""
