"""spark-submit entrypoint of the tpch job: ``spark-submit jobs/tpch.py [etl run options]``.

Thin on purpose: everything lives in the library (`etl.domains.tpch`, conf/jobs/tpch.yml).
"""

import sys

from etl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "tpch", *sys.argv[1:]]))
