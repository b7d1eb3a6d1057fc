"""The keyed hash of personal values: Spark's column and Python's `hmac` agree byte for byte
(RFC 2104, keys shorter and longer than SHA-256's block), and the key comes only from the
environment variable ``personal_data.key_env`` names."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from etl.config import load_job_config
from etl.errors import ConfigError, SecretError
from etl.privacy import key_of, keyed_hash, keyed_hash_column

ROOT = Path(__file__).resolve().parents[2]
VALUES = ["N14228", "jane.doe@example.com", "Zoë Ünal", ""]


@pytest.mark.parametrize("key", [b"a-sixteen-byte-k", bytes(range(256)) * 2])
def test_spark_and_python_compute_the_same_hmac(spark, key):
    frame = spark.createDataFrame([(v,) for v in [*VALUES, None]], "value string")

    got = [row[0] for row in frame.select(keyed_hash_column(key, "value")).collect()]

    expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in VALUES]
    assert got == [*expected, None]
    assert [keyed_hash(key, v) for v in VALUES] == expected


@pytest.fixture()
def conf(tmp_path: Path) -> Path:
    root = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", root)
    return root


def test_the_key_comes_from_the_variable_the_yaml_names(conf):
    config = load_job_config("shop", env="local", directory=conf)
    name = config.personal_data.key_env

    assert key_of(config, {name: "k" * 16}) == b"k" * 16
    with pytest.raises(ConfigError) as missing:
        key_of(config, {})
    assert str(missing.value) == (
        f"{conf / 'jobs' / 'shop.yml'}: personal_data.key_env: the job declares personal data: "
        f"set {name} to its key (a value or a secret reference such as aws-sm://ID#KEY)")
    with pytest.raises(ConfigError, match=f"{name} is too short for a key: give at least 16"):
        key_of(config, {name: "short"})


@pytest.mark.integration
def test_a_reference_is_read_from_its_secrets_manager_not_taken_as_the_key(conf, monkeypatch):
    """Commands that do not resolve the environment (etl backfill, etl quarantine replay) still
    get the secret, never the reference's text, as the key."""
    import boto3

    endpoint = os.environ.get("ETL_S3_ENDPOINT", "http://127.0.0.1:5055")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
    secret = f"etl/test/pii-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=secret, SecretString=json.dumps({"key": "k3y-from-the-manager"}))
    config = load_job_config("shop", env="local", directory=conf)
    try:
        assert key_of(config, {"ETL_PII_KEY": f"aws-sm://{secret}#key"}) == b"k3y-from-the-manager"
        with pytest.raises(SecretError, match=r"^cannot read secret aws-sm://etl/no-such-key: "
                                              r"ResourceNotFoundException$"):
            key_of(config, {"ETL_PII_KEY": "aws-sm://etl/no-such-key"})
    finally:
        client.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)


@pytest.mark.parametrize(("yaml", "key", "message"), [
    ("personal_data:\n  columns:\n    clients: {name: {silver: mask}}\n",
     "personal_data.columns.clients", "'clients' is not a source"),
    ("personal_data:\n  columns:\n    customers: {name: {silver: hide}}\n",
     "personal_data.columns.customers.name.silver",
     "expected one of 'keep', 'pseudonymise', 'mask', 'drop', got 'hide' (str)"),
    ("personal_data:\n  subjects:\n    customer: {found_in: {}}\n",
     "personal_data.subjects.customer.found_in",
     "name the sources or targets holding the subject's key"),
    ("personal_data:\n  subjects:\n    customer: {found_in: {silver_clients: {column: id}}}\n",
     "personal_data.subjects.customer.found_in.silver_clients",
     "'silver_clients' is neither a source nor a target"),
])
def test_personal_data_names_what_exists(conf, yaml, key, message):
    job = conf / "jobs" / "shop.yml"
    text = job.read_text()
    if "\npersonal_data:" in text:
        text = text[:text.index("\npersonal_data:") + 1]
    job.write_text(text + yaml)

    with pytest.raises(ConfigError) as error:
        load_job_config("shop", env="local", directory=conf)

    assert str(error.value).startswith(f"{job}: {key}: {message}")
