"""The service fixtures (PostgreSQL schema, S3 bucket) of `tests.services`."""

from tests.services import pg, pg_schema, s3  # noqa: F401
