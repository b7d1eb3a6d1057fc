"""`etl pipeline run` and `etl backfill` on the command line: the printed table and the exit
code (1 when a job or a date failed)."""

from __future__ import annotations

import pytest
import structlog

from etl.cli import main
from tests.orchestration_conf import make_conf


@pytest.fixture(autouse=True)
def restore_logging():
    """The commands configure structlog to print to the sys.stderr of the moment, which is
    capsys's file here; put back the configuration so later tests do not log to a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_pipeline_run_reports_each_job_and_fails_when_one_failed(spark, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.touch()
    conf = make_conf(tmp_path, tmp_path / "w",
                     {"first": {"fail_while_exists": str(broken), "write": False},
                      "second": {"write": False}},
                     {"p": {"pipeline": {"name": "p"},
                            "jobs": {"first": {}, "second": {"depends_on": ["first"]}}}})
    code = main(["--conf-dir", str(conf), "pipeline", "run", "p", "--date", "2013-01-01"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.split()[:3] for line in lines[2:]] == [["first", "failed", "1"],
                                                        ["second", "upstream_failed", "0"]]
    assert lines[2].endswith("RuntimeError: first: told to fail")


def test_backfill_prints_one_line_per_date(spark, tmp_path, capsys):
    conf = make_conf(tmp_path, tmp_path / "w", {"loader": {"fail_on": ["2013-01-03"]}})
    code = main(["--conf-dir", str(conf), "backfill", "loader", "--from", "2013-01-02",
                 "--to", "2013-01-03", "--batch", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.rstrip() for line in lines] == [
        "date        status     error",
        "----------  ---------  --------------------------------------------------------",
        "2013-01-02  succeeded",
        "2013-01-03  failed     RuntimeError: loader: bad date in 2013-01-03..2013-01-03",
    ]
