"""scripts/land_flights.py lands the package's rows of the days asked for, one CSV per month, the
same bytes however often a slice is landed in one process (it reads the package once per slice)."""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights


def package_rows(months: set[int], days: set[int]) -> tuple[list[str], list[list[str]]]:
    with zipfile.ZipFile(land_flights.package_data() / "flights.csv.zip") as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".csv")]
        rows = list(csv.reader(io.TextIOWrapper(archive.open(member), encoding="utf-8")))
    header = rows[0]
    month, day = header.index("month"), header.index("day")
    return header, [r for r in rows[1:] if int(r[month]) in months and int(r[day]) in days]


def test_a_slice_holds_the_package_rows_of_its_days_and_lands_the_same_bytes_twice(tmp_path):
    first = land_flights.land(tmp_path / "a", [2, 1], [2, 1])
    again = land_flights.land(tmp_path / "b", [1, 2], [1, 2])
    names = ["airlines/airlines.csv", "airports/airports.csv", "planes/planes.csv",
             "weather/weather.csv", "flights/flights_2013_01.csv", "flights/flights_2013_02.csv"]
    assert [p.relative_to(tmp_path / "a").as_posix() for p in first] == names
    assert [p.relative_to(tmp_path / "b").as_posix() for p in again] == names
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again, strict=True))
    header, expected = package_rows({1, 2}, {1, 2})
    landed = []
    for path in first[-2:]:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == header
        landed += rows[1:]
    assert landed == expected
    assert len(expected) == 3393  # days 1-2 of Jan and Feb 2013, as tests/e2e/test_flights_job.py
    assert land_flights.land(tmp_path / "a", [1, 2], [1, 2]) == []  # landed files stay as they are
