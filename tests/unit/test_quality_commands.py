"""``etl suggest``'s mapping of Deequ suggestions to YAML rules, and TABLE arguments (no Spark)."""

from __future__ import annotations

import pytest
import yaml

from etl.commands.quality import parse_table, render_suggestions
from etl.config import RuleConfig, rule_problems
from etl.errors import ConfigError

SUGGESTIONS = [
    {"code_for_constraint": '.isComplete("dest")', "description": "'dest' is not null"},
    {"code_for_constraint": '.isNonNegative("distance")',
     "description": "'distance' has no negative values"},
    {"code_for_constraint": '.isContainedIn("origin", ["EWR", "JFK", "LGA"])',
     "description": "'origin' has value range 'EWR', 'JFK', 'LGA'"},
    {"code_for_constraint": '.hasCompleteness("tailnum", _ >= 0.99, Some("It should be above 0.99!"))',
     "description": "'tailnum' has less than 1% missing values"},
    {"code_for_constraint": '.isUnique("id")', "description": "'id' is unique"},
    {"code_for_constraint": '.hasDataType("flight", ConstrainableDataTypes.Integral)',
     "description": "'flight' has type Integral"},
]


def test_suggestions_become_rules_ready_to_paste():
    text = render_suggestions("silver/flights", SUGGESTIONS)
    assert text.splitlines()[0] == (
        "# rules suggested by Deequ for silver/flights; paste under quality.<target> and review"
        " severities")
    assert text.splitlines()[-1] == (
        '# not mapped to a rule type: .hasDataType("flight", ConstrainableDataTypes.Integral)')
    rules = yaml.safe_load(text)
    assert rules == [
        {"name": "dest_complete", "type": "complete", "columns": ["dest"], "severity": "warn",
         "description": "'dest' is not null"},
        {"name": "distance_non_negative", "type": "non_negative", "columns": ["distance"],
         "severity": "warn", "description": "'distance' has no negative values"},
        {"name": "origin_allowed_values", "type": "allowed_values", "columns": ["origin"],
         "values": ["EWR", "JFK", "LGA"], "severity": "warn",
         "description": "'origin' has value range 'EWR', 'JFK', 'LGA'"},
        {"name": "tailnum_complete", "type": "complete", "columns": ["tailnum"],
         "threshold": 0.99, "severity": "warn",
         "description": "'tailnum' has less than 1% missing values"},
        {"name": "id_unique", "type": "unique", "columns": ["id"], "severity": "warn",
         "description": "'id' is unique"},
    ]
    assert [rule_problems(RuleConfig(**r)) for r in rules] == [[]] * 5


@pytest.mark.parametrize("text, expected", [("silver/flights", ("silver", "flights")),
                                            ("gold/carrier_daily_performance",
                                             ("gold", "carrier_daily_performance"))])
def test_table_argument(text, expected):
    assert parse_table(text) == expected


def test_bad_table_argument_names_it():
    with pytest.raises(ConfigError) as info:
        parse_table("flights")
    assert str(info.value) == (
        "TABLE: expected layer/name with layer one of bronze, silver, gold, got 'flights'")
