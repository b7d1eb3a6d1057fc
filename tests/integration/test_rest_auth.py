"""The auth header of a REST source from AWS Secrets Manager (moto's server answers the API):
a JSON key of the secret, the whole secret string, and errors that name the secret only."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from etl.config import RestAuth
from etl.errors import SourceError
from etl.readers.rest import auth_headers
from tests.services import require_service

pytestmark = pytest.mark.integration


@pytest.fixture()
def secrets(monkeypatch):
    """A Secrets Manager client on the local AWS API server, and a fresh secret name prefix."""
    import boto3

    endpoint = os.environ["ETL_S3_ENDPOINT"]
    host, port = endpoint.split("//", 1)[1].split(":")
    require_service("AWS API (moto)", host, int(port))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    return boto3.client("secretsmanager", region_name="us-east-1"), f"etl/test/{uuid.uuid4().hex[:8]}"


def test_token_from_a_json_secret_and_from_a_plain_secret(secrets):
    client, prefix = secrets
    client.create_secret(Name=f"{prefix}/json", SecretString=json.dumps({"token": "t-123"}))
    client.create_secret(Name=f"{prefix}/plain", SecretString="k-456")

    assert auth_headers("api", RestAuth(secret_id=f"{prefix}/json", region="us-east-1")) == {
        "Authorization": "Bearer t-123"}
    plain = RestAuth(secret_id=f"{prefix}/plain", secret_key="", region="us-east-1",
                     header="X-Api-Key", scheme="")
    assert auth_headers("api", plain) == {"X-Api-Key": "k-456"}


def test_a_missing_or_unfit_secret_is_named_without_its_value(secrets):
    client, prefix = secrets
    client.create_secret(Name=f"{prefix}/other", SecretString=json.dumps({"key": "hidden-789"}))

    with pytest.raises(SourceError) as missing:
        auth_headers("api", RestAuth(secret_id=f"{prefix}/nope", region="us-east-1"))
    with pytest.raises(SourceError) as unfit:
        auth_headers("api", RestAuth(secret_id=f"{prefix}/other", region="us-east-1"))

    assert str(missing.value) == (
        f"source api: cannot read secret {prefix}/nope: ResourceNotFoundException")
    assert str(unfit.value) == f"source api: secret {prefix}/other is not JSON with key 'token'"
