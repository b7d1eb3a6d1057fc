"""Scenario 11: bad configuration and command-line input end ``etl run`` with exit code 2 and one
clear message, before Spark starts. Each case runs the real CLI in a process whose ``JAVA_HOME``
points nowhere: had it tried to start Spark, it would have failed differently (exit 1, a Java
error). The messages' wording is asserted in full (tests/unit/test_config.py covers the config
loader's messages case by case)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.reliability.harness import ROOT


def etl(*args: str, conf_dir=ROOT / "conf") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAVA_HOME": "/nonexistent/java",
           "SPARK_HOME": "/nonexistent/spark"}
    return subprocess.run([sys.executable, "-m", "etl", "--conf-dir", str(conf_dir), *args],
                          check=False, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nosuch"], "etl: error: {conf}/jobs/nosuch.yml: unknown job 'nosuch' "
                        "(known jobs: flights, shop, tpch)"),
    (["run", "flights", "--date", "2013-02-30"],
     "etl run: error: argument --date: not a date (YYYY-MM-DD): '2013-02-30'"),
    (["run", "flights", "--from", "2013-01-05", "--to", "2013-01-01"],
     "etl: error: --from 2013-01-05 is after --to 2013-01-01"),
    (["run", "flights", "--from", "2013-01-05"],
     "etl: error: give both --from and --to (or --date), or neither"),
    (["run", "flights", "--set", "spark.nope=1"],
     "etl: error: --set: spark.nope: unknown key (allowed: app_name, conf, driver_memory, "
     "jars_dir, log_level, master, shuffle_partitions)"),
])
def test_bad_command_line_exits_2_with_one_message_before_spark(args, message):
    result = etl(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == message.format(conf=ROOT / "conf")
    assert "java" not in result.stderr.lower()


def test_yaml_syntax_error_exits_2_naming_the_file_and_line(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    job = conf / "jobs" / "flights.yml"
    text = job.read_text()
    anchor = "  flights:\n    path: flights\n"
    # 1-based: the anchor's first line, then the broken path line, then the next key, where
    # the parser meets the ':' that cannot be inside a flow sequence
    line = text[:text.index(anchor)].count("\n") + 3
    job.write_text(text.replace(anchor, "  flights:\n    path: [flights\n", 1))
    result = etl("run", "flights", conf_dir=conf)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"etl: error: {job}: YAML syntax error at line {line}, column 12: "
                             "expected ',' or ']', but got ':'\n")
    assert "java" not in result.stderr.lower()
