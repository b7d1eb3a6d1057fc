"""Fixtures for tests against the real services (`scripts/services.sh start postgres s3`; `make
test` starts them): a PostgreSQL schema of its own per test, an S3 bucket of its own per test.

The defaults are the local test servers' (127.0.0.1:25432, role etl, password etl; moto on
127.0.0.1:5055 with its fake credentials); `scripts/services.sh env` prints the same values.
They are set before the SparkSession starts, so the JVM's AWS credential chain sees them."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

TEST_SERVICES = {
    "ETL_PG_HOST": "127.0.0.1",
    "ETL_PG_PORT": "25432",
    "ETL_PG_DB": "etl",
    "ETL_PG_USER": "etl",
    "ETL_PG_PASSWORD": "etl",
    "ETL_S3_ENDPOINT": "http://127.0.0.1:5055",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
for _name, _value in TEST_SERVICES.items():
    os.environ.setdefault(_name, _value)


def require_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        pytest.fail(f"{name} is not answering on {host}:{port}: run `scripts/services.sh start` "
                    "(make test starts it)", pytrace=False)


@pytest.fixture()
def pg():
    """An autocommit psycopg connection to the test database."""
    require_service("PostgreSQL", os.environ["ETL_PG_HOST"], int(os.environ["ETL_PG_PORT"]))
    import seed_shop

    with seed_shop.connect() as conn:
        yield conn


@pytest.fixture()
def pg_schema(pg):
    """A fresh schema name, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    pg.execute(f"CREATE SCHEMA {schema}")
    yield schema
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture()
def s3(spark):
    """A boto3 S3 client on the test endpoint and a fresh bucket; s3a:// configured for it."""
    import boto3

    from etl.config import S3Settings
    from etl.storage import configure_s3a

    endpoint = os.environ["ETL_S3_ENDPOINT"]
    host, port = endpoint.split("//", 1)[1].split(":")
    require_service("S3 API (moto)", host, int(port))
    configure_s3a(spark, S3Settings(endpoint=endpoint, path_style_access=True))
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"etl-test-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
