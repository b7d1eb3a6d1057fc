"""Named fault-injection points for the reliability tests and ``make chaos``.

A point is a call ``kill_point("after_publish")`` at a place where a crash matters. When the
environment variable ``ETL_FAULT`` names that point, the process kills itself with SIGKILL there
(no ``finally``, no run record, no cleanup: exactly what a lost driver leaves behind). When
``ETL_FAULT`` is unset the call is one dictionary lookup. Points in the library:

* ``after_publish``: the flights job committed silver and gold but has not yet recorded its
  landed files in the ledger (and the runner has not written the run record).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "ETL_FAULT"
POINTS = ("after_publish",)


def kill_point(name: str) -> None:
    """SIGKILL this process when ``$ETL_FAULT`` is ``name``; otherwise do nothing."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
