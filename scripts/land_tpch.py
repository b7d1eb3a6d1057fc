"""Land TPC-H CSVs for the tpch job with tpchgen-cli (the `bench` extra installs it).

Usage: python scripts/land_tpch.py --landing DIR [--scale 0.1] [--parts N]

Writes ``DIR/tpch/{lineitem,orders}/<table>.<part>.csv`` (``--parts`` files each, so a landing
grows by files as a real feed does) and ``DIR/tpch/{customer,nation}/<table>.1.csv`` (one file:
they are snapshot sources), with a header row.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

FACTS = ("lineitem", "orders")
DIMENSIONS = ("customer", "nation")


def tpchgen() -> str:
    """The tpchgen-cli executable: next to this Python, else on PATH."""
    local = Path(sys.executable).with_name("tpchgen-cli")
    found = str(local) if local.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise SystemExit("tpchgen-cli not found: pip install -e '.[bench]' (or make bench)")
    return found


def land(landing: Path, scale: float, parts: int = 1) -> Path:
    """Generate the four tables at ``scale`` under ``landing/tpch``; returns that folder."""
    if scale <= 0 or parts < 1:
        raise ValueError(f"scale must be > 0 and parts >= 1, got {scale}, {parts}")
    out = landing / "tpch"
    shutil.rmtree(out, ignore_errors=True)
    for tables, count in ((FACTS, parts), (DIMENSIONS, 1)):
        subprocess.run(
            [tpchgen(), "csv", "-s", f"{scale:g}", "--tables", ",".join(tables),
             "--parts", str(count), "-o", str(out)],
            check=True, stdout=subprocess.DEVNULL,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--parts", type=int, default=1)
    args = parser.parse_args(argv)
    print(land(args.landing, args.scale, args.parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
