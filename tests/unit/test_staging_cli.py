"""``etl run JOB --from-staging RUN_ID``: refused, before Spark starts, for a job that does not
stage its extracts and together with dates."""

from __future__ import annotations

import pytest

from etl.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "flights", "--from-staging", "20261126T010342Z-1f0c2a9b"],
         ("etl: error: {conf}/jobs/flights.yml: staging.enabled: job flights does not stage its "
         "extracts, so it cannot re-run from staging (set staging.enabled: true)\n")),
        (["run", "shop", "--from-staging", "r1", "--date", "2026-01-01"],
         "etl: error: use either --from-staging or dates, not both\n"),
    ],
)
def test_from_staging_refused(capsys, conf_dir, args, message):
    assert main(["--conf-dir", str(conf_dir), *args]) == 2
    assert capsys.readouterr().err == message.replace("{conf}", str(conf_dir))
