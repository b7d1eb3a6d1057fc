"""The ``quality`` section at config load: every rule type's parameters are checked, and a bad
rule fails before Spark starts with the file and key named."""

from __future__ import annotations

import shutil

import pytest

from etl.config import ReferenceConfig, RuleConfig, load_job_config, rule_problems
from etl.errors import ConfigError
from tests.conftest import ROOT


@pytest.fixture()
def conf(tmp_path, conf_dir):
    target = tmp_path / "conf"
    shutil.copytree(conf_dir, target)
    return target


def with_rule(conf, yaml_rule: str) -> str:
    """Append one rule to flights' silver rules; return the job file's path."""
    job = conf / "jobs" / "flights.yml"
    text = job.read_text()
    anchor = "      description: every row has its key columns\n"
    job.write_text(text.replace(anchor, anchor + yaml_rule))
    return str(job)


def test_flights_rules_load_typed(conf_dir):
    rules = load_job_config("flights", directory=conf_dir).quality["silver_flights"]
    by_name = {r.name: r for r in rules}
    assert by_name["dest_in_airports"] == RuleConfig(
        name="dest_in_airports", type="foreign_key", columns=["dest"], severity="warn",
        references=ReferenceConfig(table="airports", columns=["faa"]),
        description="destination airports missing from the airports table",
    )
    assert by_name["distance_positive"].min == 1.0
    assert by_name["distance_positive"].quarantine is True
    assert [r.type for r in rules] == [
        "unique", "complete", "allowed_values", "range", "pattern", "foreign_key", "foreign_key",
        "foreign_key", "complete", "sql", "sql", "anomaly", "anomaly"]


@pytest.mark.parametrize("rule, key, message", [
    ("    - {name: r, type: nonsense, columns: [dest]}\n", "quality.silver_flights[2].type",
     ("expected one of 'complete', 'unique', 'primary_key', 'range', 'allowed_values', 'pattern', "
     "'non_negative', 'size', 'foreign_key', 'sql', 'anomaly', got 'nonsense' (str)")),
    ("    - {name: r, type: range, columns: [distance]}\n", "quality.silver_flights[2].min",
     "rule 'r' (range): give min, max or both"),
    ("    - {name: r, type: complete, columns: [dest], pattern: x}\n",
     "quality.silver_flights[2].pattern",
     ("rule 'r' (complete): parameter does not apply to this type (it takes: columns, quarantine, "
     "threshold)")),
    ("    - {name: r, type: allowed_values, columns: [origin]}\n",
     "quality.silver_flights[2].values", "rule 'r' (allowed_values): required parameter missing"),
    ("    - {name: r, type: complete, columns: [dest], threshold: 1.5}\n",
     "quality.silver_flights[2].threshold",
     "rule 'r' (complete): expected a share in (0, 1], got 1.5"),
    ("    - {name: r, type: pattern, columns: [dest], pattern: '[A-'}\n",
     "quality.silver_flights[2].pattern",
     "rule 'r' (pattern): not a regular expression: unterminated character set at position 0"),
    (("    - {name: r, type: foreign_key, columns: [origin, time_hour],"
     " references: {table: weather, columns: [origin]}}\n"),
     "quality.silver_flights[2].references.columns",
     "rule 'r' (foreign_key): expected 2 columns to match ['origin', 'time_hour'], got ['origin']"),
    ("    - {name: r, type: anomaly, metric: mean, strategy: online_normal}\n",
     "quality.silver_flights[2].columns", "rule 'r' (anomaly): metric mean needs exactly one column"),
    ("    - {name: r, type: anomaly, metric: row_count, strategy: relative_rate_of_change}\n",
     "quality.silver_flights[2].max_rate_increase",
     "rule 'r' (anomaly): give max_rate_decrease, max_rate_increase or both"),
    (("    - {name: r, type: anomaly, metric: row_count, strategy: online_normal,"
     " max_rate_increase: 2}\n"), "quality.silver_flights[2].max_rate_increase",
     "rule 'r' (anomaly): applies to strategy relative_rate_of_change"),
    ("    - {name: flight_key_unique, type: size, min: 1}\n", "quality.silver_flights[2].name",
     "duplicate rule name 'flight_key_unique'"),
    ("    - {name: r, type: size, min: 5, max: 1, severity: fatal}\n",
     "quality.silver_flights[2].severity", "expected one of 'error', 'warn', got 'fatal' (str)"),
])
def test_bad_rules_fail_at_load_with_file_and_key(conf, rule, key, message):
    job = with_rule(conf, rule)
    with pytest.raises(ConfigError) as info:
        load_job_config("flights", directory=conf)
    assert str(info.value) == f"{job}: {key}: {message}"


def test_rule_problems_of_a_valid_rule_is_empty():
    rule = RuleConfig(name="n", type="range", columns=["x"], min=0, max=10, threshold=0.9,
                      quarantine=True)
    assert rule_problems(rule) == []


def test_readme_rule_examples_load(conf):
    """The YAML example of every rule type in docs/quality.md is valid configuration."""
    section = (ROOT / "docs" / "quality.md").read_text()
    block = section[section.index("```yaml\nquality:\n") + len("```yaml\n"):]
    block = block[:block.index("```")]
    job = conf / "jobs" / "flights.yml"
    original = job.read_text()
    job.write_text(original[:original.index("quality:\n")] + block)
    rules = load_job_config("flights", directory=conf).quality["silver_flights"]
    assert sorted({r.type for r in rules}) == sorted(
        ["complete", "unique", "primary_key", "range", "allowed_values", "pattern",
         "non_negative", "size", "foreign_key", "sql", "anomaly"])
