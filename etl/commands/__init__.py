"""Subcommands of the ``etl`` CLI, one module each.

A module defines ``register(commands)``, which adds its sub-parser(s) to the argparse
sub-parsers object and sets ``handler=function(args) -> exit code`` as a default. `etl.cli` lists
the modules in ``COMMAND_MODULES``; heavy imports (pyspark) stay inside the handlers so that
``--help`` and configuration errors never start Spark.
"""
