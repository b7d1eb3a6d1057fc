"""spark-submit entrypoint of the flights job: ``spark-submit jobs/flights.py [etl run options]``.

Thin on purpose: everything lives in the library (`etl.domains.flights`, conf/jobs/flights.yml).
"""

import sys

from etl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "flights", *sys.argv[1:]]))
