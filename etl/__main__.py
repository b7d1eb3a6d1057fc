"""``python -m etl``: the command line (`etl.cli`).

It is also the generic driver of every job on a cluster: ``make dist`` ships this file as
``main-<hash>.py``, spark-submit's primary resource, run as ``main-<hash>.py run JOB --env ENV
[--date D | --from D --to D] [--set KEY=VALUE ...]`` with the packed environment's Python, which
holds the library and the ``jobs`` package.
"""

from __future__ import annotations

if __name__ == "__main__":
    from etl.cli import main

    raise SystemExit(main())
