"""Fixtures of the unit tests: ``dist_for(platform)``, stand-in artefacts of `make dist`."""

from tests.orchestration_dist import dist_for  # noqa: F401
