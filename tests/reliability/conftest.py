"""One first run of the flights job shared by the reliability tests (a full run costs ~20 s on a
quiet machine): the landed slice of 1 January 2013 plus odd files (tests/reliability/
test_bad_files.py reads what that run did; test_driver_kills.py continues from it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl.config import JobConfig, load_job_config
from etl.context import RunContext
from etl.runner import run_job
from tests.reliability.harness import ROOT
from tests.services import pg, pg_schema, s3  # noqa: F401  (the service fixtures)

sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

HEADER = ("year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
          "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour\n")


def flight_row(flight: int, tailnum: str = "N14228") -> str:
    return (f"2013,1,1,517,515,2,830,819,11,UA,{flight},{tailnum},EWR,IAH,227,1400,5,15,"
            "2013-01-01T10:00:00Z\n")


def land_odd_files(folder: Path) -> None:
    """Good flights 9002 and 9004, bad 9003 (Latin-1) and 9005 (cut off), no rows in two files."""
    (folder / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + flight_row(9002)).encode())
    (folder / "latin1.csv").write_bytes((HEADER + flight_row(9003, "N\xe9")).encode("latin-1"))
    (folder / "truncated.csv").write_text(HEADER + flight_row(9004) + flight_row(9005)[:40])
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text(HEADER)


@dataclass(frozen=True)
class FirstLoad:
    warehouse: Path
    landing: Path
    config: JobConfig
    ctx: RunContext


@pytest.fixture(scope="session")
def first_load(spark, tmp_path_factory) -> FirstLoad:
    root = tmp_path_factory.mktemp("reliability")
    warehouse, landing = root / "warehouse", root / "landing"
    land_flights.land(landing, [1], [1])
    land_odd_files(landing / "flights")
    config = load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}"])
    return FirstLoad(warehouse, landing, config, run_job(config, spark=spark))
