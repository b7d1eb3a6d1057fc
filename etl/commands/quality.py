"""``etl profile TABLE`` and ``etl suggest TABLE``: Deequ's column profile of a warehouse table,
and quality rules proposed from Deequ's constraint suggestions, printed as YAML to paste under
``quality.<target>`` of a job's configuration."""

from __future__ import annotations

import argparse
import re
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError

_LAYERS = ("bronze", "silver", "gold")
_STRING = r'"((?:[^"\\]|\\.)*)"'
#: Deequ's suggested Scala code -> (rule type, parameters); anything else becomes a comment.
_SUGGESTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^\.isComplete\({_STRING}\)$"), "complete"),
    (re.compile(rf"^\.hasCompleteness\({_STRING}, _ >= ([0-9.]+),"), "complete_threshold"),
    (re.compile(rf"^\.isNonNegative\({_STRING}\)$"), "non_negative"),
    (re.compile(rf"^\.isUnique\({_STRING}\)$"), "unique"),
    (re.compile(rf"^\.isContainedIn\({_STRING}, (?:Array\(|\[)(.*)[\])]\)$"), "allowed_values"),
]


def register(commands: Any) -> None:
    for name, helptext in (
        ("profile", "print Deequ's column profile of a warehouse table"),
        ("suggest", "print quality rules (YAML) proposed by Deequ for a warehouse table"),
    ):
        parser = commands.add_parser(
            name, help=helptext,
            description=f"{helptext[0].upper()}{helptext[1:]}. TABLE is layer/name, e.g. "
            "silver/flights, read from <warehouse>/<layer>/<name>.",
        )
        parser.add_argument("table", help="layer/name, e.g. silver/flights")
        add_env_option(parser)
        parser.add_argument("--columns", help="comma-separated columns (default: all)")
        parser.set_defaults(handler=handle_profile if name == "profile" else handle_suggest)


def parse_table(text: str) -> tuple[str, str]:
    """``layer/name`` -> ``(layer, name)``; a ConfigError naming the argument otherwise."""
    layer, _, name = text.partition("/")
    if layer not in _LAYERS or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ConfigError(f"expected layer/name with layer one of {', '.join(_LAYERS)}, "
                          f"got {text!r}", file="TABLE")
    return layer, name


def _load(args: argparse.Namespace) -> Any:
    from etl.config import load_settings
    from etl.context import Warehouse
    from etl.errors import SourceError
    from etl.session import get_spark
    from etl.tables import read_delta, table_exists

    layer, name = parse_table(args.table)
    settings = load_settings(env=args.env, directory=args.conf_dir)
    spark = get_spark(settings.spark)
    path = Warehouse.at(settings.paths.warehouse).table(layer, name)  # type: ignore[arg-type]
    if not table_exists(spark, path):
        raise SourceError(f"no Delta table {args.table} at {path}")
    df = read_delta(spark, path)
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in df.columns]
        if unknown:
            raise ConfigError(f"columns {unknown} not in {args.table} "
                              f"(columns: {', '.join(df.columns)})", file="--columns")
        df = df.select(*wanted)
    return df


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def handle_profile(args: argparse.Namespace) -> int:
    from etl.inspection import format_table
    from etl.quality.deequ import profile

    df = _load(args)
    rows = profile(df)
    print(format_table(
        ["column", "type", "completeness", "approx distinct", "min", "max", "mean", "stddev"],
        [(r["column"], r["type"], _number(r["completeness"]), _number(r["approx_distinct"]),
          _number(r["min"]), _number(r["max"]), _number(r["mean"]), _number(r["stddev"]))
         for r in rows],
    ))
    return EXIT_OK


def suggestion_rule(suggestion: dict[str, Any]) -> dict[str, Any] | None:
    """A YAML rule for one Deequ suggestion, or None when no rule type fits it."""
    code = suggestion.get("code_for_constraint", "").strip()
    for pattern, kind in _SUGGESTIONS:
        match = pattern.search(code)
        if not match:
            continue
        column = match.group(1)
        rule: dict[str, Any] = {"name": f"{column}_{kind.replace('_threshold', '')}",
                                "type": kind.replace("_threshold", ""), "columns": [column]}
        if kind == "complete_threshold":
            rule["threshold"] = float(match.group(2))
        if kind == "allowed_values":
            rule["values"] = re.findall(_STRING, match.group(2))
        rule["severity"] = "warn"
        rule["description"] = suggestion.get("description", "")
        return rule
    return None


def render_suggestions(table: str, suggestions: list[dict[str, Any]]) -> str:
    """YAML list of rules (one per usable suggestion) and comments for the others."""
    import yaml

    rules: list[dict[str, Any]] = []
    skipped: list[str] = []
    for s in suggestions:
        rule = suggestion_rule(s)
        if rule is None:
            skipped.append(s.get("code_for_constraint", ""))
        elif rule["name"] not in {r["name"] for r in rules}:
            rules.append(rule)
    text = (f"# rules suggested by Deequ for {table}; paste under quality.<target> and review"
            " severities\n")
    text += yaml.safe_dump(rules, sort_keys=False, width=100, allow_unicode=True,
                           default_flow_style=None)
    for code in skipped:
        text += f"# not mapped to a rule type: {code}\n"
    return text


def handle_suggest(args: argparse.Namespace) -> int:
    from etl.quality.deequ import suggest

    df = _load(args)
    print(render_suggestions(args.table, suggest(df)), end="")
    return EXIT_OK
