"""Seed the "shop" PostgreSQL database: customers, orders and order_items, each with
``updated_at``, for the shop job (conf/jobs/shop.yml).

Usage: python scripts/seed_shop.py [--schema shop] [--customers 20] [--orders 60] [--seed 7]

Connects to $ETL_PG_HOST:$ETL_PG_PORT/$ETL_PG_DB as $ETL_PG_USER with $ETL_PG_PASSWORD (the
settings `scripts/services.sh env postgres` prints; the password of the local test server
defaults to ``etl``). The schema is dropped and created again, and the rows are the same for the
same arguments: every ``updated_at`` is a fixed time on 2026-01-01 or 2026-01-02.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
from decimal import Decimal
from typing import Any

START = dt.datetime(2026, 1, 1, 8, 0, 0)
PRODUCTS = {"kettle": Decimal("34.90"), "mug": Decimal("7.50"), "teapot": Decimal("22.00"),
            "tea": Decimal("4.25"), "strainer": Decimal("3.10")}
COUNTRIES = ["FR", "DE", "NL", "BE", "ES"]

DDL = """
DROP SCHEMA IF EXISTS {schema} CASCADE;
CREATE SCHEMA {schema};
CREATE TABLE {schema}.customers (
    id bigint PRIMARY KEY, name text NOT NULL, email text, country text NOT NULL,
    updated_at timestamp NOT NULL);
CREATE TABLE {schema}.orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES {schema}.customers (id),
    status text NOT NULL, ordered_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE TABLE {schema}.order_items (
    id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES {schema}.orders (id),
    product text NOT NULL, quantity integer NOT NULL, unit_price numeric(10, 2) NOT NULL,
    updated_at timestamp NOT NULL);
CREATE INDEX ON {schema}.customers (updated_at);
CREATE INDEX ON {schema}.orders (updated_at);
CREATE INDEX ON {schema}.order_items (updated_at);
-- log-based CDC (type: pg_logical) needs the whole old row in the WAL: see docs/sources.md
ALTER TABLE {schema}.customers REPLICA IDENTITY FULL;
ALTER TABLE {schema}.orders REPLICA IDENTITY FULL;
ALTER TABLE {schema}.order_items REPLICA IDENTITY FULL;
"""


def connect() -> Any:
    """A psycopg connection (autocommit) to the database named by the ETL_PG_* variables."""
    import psycopg

    return psycopg.connect(
        host=os.environ.get("ETL_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("ETL_PG_PORT", "25432")),
        dbname=os.environ.get("ETL_PG_DB", "etl"),
        user=os.environ.get("ETL_PG_USER", "etl"),
        password=os.environ.get("ETL_PG_PASSWORD", "etl"),
        autocommit=True,
    )


def rows(customers: int, orders: int, seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """The seed rows of each table (deterministic for the arguments)."""
    rng = random.Random(seed)
    tick = dt.timedelta(minutes=7)
    people = [
        (i, f"customer {i}", f"c{i}@example.com", rng.choice(COUNTRIES), START + i * tick)
        for i in range(1, customers + 1)
    ]
    order_rows, items = [], []
    for i in range(1, orders + 1):
        ordered_at = START + dt.timedelta(hours=(i * 37) % 40, minutes=i % 60)
        status = "cancelled" if i % 9 == 0 else "paid"
        order_rows.append((i, rng.randint(1, customers), status, ordered_at, ordered_at))
        for _ in range(rng.randint(1, 3)):
            product = rng.choice(sorted(PRODUCTS))
            items.append((len(items) + 1, i, product, rng.randint(1, 4), PRODUCTS[product],
                          ordered_at))
    return {"customers": people, "orders": order_rows, "order_items": items}


def seed(conn: Any, schema: str, customers: int = 20, orders: int = 60, seed: int = 7) -> dict[str, int]:
    """(Re)create ``schema`` with the three tables and their seed rows; return row counts."""
    conn.execute(DDL.format(schema=schema))
    data = rows(customers, orders, seed)
    with conn.cursor() as cur:
        for table, values in data.items():
            marks = ", ".join(["%s"] * len(values[0]))
            cur.executemany(f"INSERT INTO {schema}.{table} VALUES ({marks})", values)
    return {table: len(values) for table, values in data.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", default=os.environ.get("ETL_SHOP_SCHEMA", "shop"))
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with connect() as conn:
        counts = seed(conn, args.schema, args.customers, args.orders, args.seed)
    print(f"seeded schema {args.schema}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))


if __name__ == "__main__":
    main()
