"""``etl lineage TABLE``: the graph of datasets and jobs around a table, from stored events."""

from __future__ import annotations

import argparse
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError


def register(commands: Any) -> None:
    lineage = commands.add_parser(
        "lineage", help="show the lineage of a table",
        description="Print the datasets and jobs upstream and downstream of TABLE (a layer/table "
        "name such as silver/flights, or a path), from the OpenLineage events stored under "
        "<warehouse>/_etl/lineage/ by the file transport (a local folder or S3), without Spark.",
    )
    lineage.add_argument("table", help="layer/table (e.g. silver/flights), landing/<source>, or a path")
    direction = lineage.add_mutually_exclusive_group()
    direction.add_argument("--upstream", action="store_true", help="only what TABLE comes from")
    direction.add_argument("--downstream", action="store_true", help="only what comes from TABLE")
    lineage.add_argument("--format", choices=["text", "dot", "mermaid"], default="text",
                         help="text (default), Graphviz dot, or a Mermaid flowchart")
    add_env_option(lineage)
    lineage.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl.config import load_settings
    from etl.context import Warehouse
    from etl.lineage import COMPLETE, build_graph, read_events, render

    settings = load_settings(env=args.env, directory=args.conf_dir)
    warehouse = Warehouse.at(settings.paths.warehouse)
    events = read_events(warehouse, settings.s3, types=[COMPLETE])
    if not events:
        raise ConfigError(
            f"no lineage events of a completed run stored under {warehouse.records('lineage')}")
    graph = build_graph(events, warehouse, settings.paths.landing)
    node = graph.find(args.table)
    around = graph.around(node, upstream=not args.downstream, downstream=not args.upstream)
    print(render(around, args.format))
    return EXIT_OK
