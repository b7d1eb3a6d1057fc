from __future__ import annotations

from etl.cli import main

raise SystemExit(main())
