"""spark-submit entrypoint of the shop job: ``spark-submit jobs/shop.py [etl run options]``.

Thin on purpose: everything lives in the library (`etl.domains.shop`, conf/jobs/shop.yml).
"""

import sys

from etl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "shop", *sys.argv[1:]]))
