"""`type: rest` and `type: kafka` sources in YAML: the examples of docs/sources.md load into typed objects,
and a misconfigured source fails at load time with the file and key named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from etl.config import (
    KafkaConfig,
    RestAuth,
    RestConfig,
    RestIncremental,
    RestPagination,
    RestRetry,
    load_job_config,
)
from etl.errors import ConfigError

SOURCES_DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def readme_yaml(source_type: str) -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", SOURCES_DOC.read_text(), flags=re.S)
    # the reference example of the type (a whole job's example starts with job:)
    # the first: the section's reference example (later sections show one setting or another)
    block = next(b for b in blocks if f"type: {source_type}\n" in b and not b.startswith("job:"))
    return yaml.safe_load(block)


def load(tmp_path: Path, document: dict, environ: dict[str, str] | None = None):
    (tmp_path / "jobs").mkdir(exist_ok=True)
    (tmp_path / "base.yml").write_text("{}\n")
    (tmp_path / "local.yml").write_text("{}\n")
    job = {"job": {"name": "api", "entrypoint": "jobs.api:run"}, **document}
    (tmp_path / "jobs" / "api.yml").write_text(yaml.safe_dump(job))
    return load_job_config("api", directory=tmp_path, environ=environ or {})


def test_the_readme_rest_example_loads(tmp_path):
    config = load(tmp_path, readme_yaml("rest"))

    assert config.source("tickets").rest == RestConfig(
        url="https://api.example.com/v2/tickets",
        schema="id bigint, subject string, status string, updated_at timestamp",
        records_path="data", required=["id"], params={"status": "all"},
        auth=RestAuth(token_env="TICKETS_API_TOKEN"),
        pagination=RestPagination(style="cursor", cursor_param="cursor",
                                  cursor_path="meta.next_cursor"),
        incremental=RestIncremental(param="updated_since", field="updated_at"),
        timeout_s=10.0,
        retry=RestRetry(attempts=5, backoff_s=0.5, max_backoff_s=30.0, max_retry_after_s=120.0),
    )


def test_the_readme_kafka_example_loads(tmp_path):
    config = load(tmp_path, readme_yaml("kafka"), {"ETL_KAFKA_BOOTSTRAP": "broker:9092"})

    assert config.source("clicks").kafka == KafkaConfig(
        bootstrap_servers="broker:9092", topics=["clicks"],
        schema="id bigint, user_id bigint, url string, ts timestamp", required=["id"],
        starting_offsets="earliest", trigger="available_now", max_offsets_per_trigger=100000,
        options={"kafka.security.protocol": "PLAINTEXT"},
    )
    assert config.source("clicks").bronze == "bronze_clicks"
    assert config.target("clicks").keys == ["id"]


@pytest.mark.parametrize(("source", "key", "message"), [
    ({"type": "rest"}, "sources.s.rest",
     "required value missing for a rest source (expected a mapping)"),
    ({"type": "rest", "rest": {"url": "ftp://x", "schema": "id int"}}, "sources.s.rest.url",
     "expected an http(s) URL"),
    ({"type": "rest", "rest": {"url": "http://x", "schema": "id int",
                               "pagination": {"style": "page", "page_size": 0}}},
     "sources.s.rest.pagination.page_size", "expected at least 1"),
    ({"type": "kafka", "kafka": {"bootstrap_servers": "b:9092", "schema": "id int",
                                 "topics": ["t"], "subscribe_pattern": "t.*"}},
     "sources.s.kafka.topics", "give exactly one of topics and subscribe_pattern"),
    ({"type": "kafka", "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"]}},
     "sources.s.kafka.schema", "required value missing (expected str)"),
    ({"type": "kafka", "kafka": {"bootstrap_servers": "b:9092", "schema": "id int",
                                 "topics": ["t"]}, "rest": {"url": "http://x", "schema": "a int"}},
     "sources.s.rest", "only a source of type rest has a rest section"),
    ({"path": "events", "kafka": {"bootstrap_servers": "b:9092", "schema": "id int"}},
     "sources.s.kafka", "only a source of type kafka has a kafka section"),
])
def test_a_misconfigured_source_fails_at_load_with_the_key(tmp_path, source, key, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"sources": {"s": source}})

    assert str(caught.value) == f"{tmp_path / 'jobs' / 'api.yml'}: {key}: {message}"
