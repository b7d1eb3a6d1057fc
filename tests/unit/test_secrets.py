"""Secret references resolved where the job runs: AWS Secrets Manager (moto's server on
127.0.0.1), GCP Secret Manager (a local stand-in for the metadata server and the REST API), and
`etl run`, which resolves them in its environment and its --set values before loading conf."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import structlog

from etl import secrets
from etl.cli import main
from etl.errors import ConfigError, SecretError
from tests.orchestration_conf import make_conf

ENDPOINT = os.environ.get("ETL_S3_ENDPOINT", "http://127.0.0.1:5055")


def test_references_are_parsed_and_malformed_ones_named():
    assert secrets.parse_reference("aws-sm://etl/prod/pg#password") == secrets.SecretRef(
        "aws", "etl/prod/pg", "password")
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:etl-pg-AbCdEf"
    assert secrets.parse_reference(f"aws-sm://{arn}") == secrets.SecretRef("aws", arn)
    assert secrets.parse_reference("gcp-sm://projects/p/secrets/pg/versions/3#password") == \
        secrets.SecretRef("gcp", "projects/p/secrets/pg/versions/3", "password")
    assert secrets.parse_reference("s3a://lake/warehouse") is None
    with pytest.raises(ConfigError, match=r"not a secret reference: 'gcp-sm://pg'"):
        secrets.parse_reference("gcp-sm://pg")


@pytest.mark.parametrize(("name", "secret"), [
    ("ETL_PG_PASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True), ("GITHUB_TOKEN", True),
    ("spark.conf.spark.hadoop.fs.s3a.secret.key", True), ("s3.conf.fs.s3a.access.key", True),
    ("lineage.api_key_env", False), ("sources.pg.jdbc.credentials.password_env", False),
    ("sources.pg.jdbc.credentials.secret_id", False), ("sources.api.rest.auth.secret_key", False),
    ("sources.pg.jdbc.credentials.region", False), ("ETL_WAREHOUSE", False),
])
def test_secret_names(name, secret):
    assert secrets.looks_secret_name(name) is secret


@pytest.fixture()
def secretsmanager(monkeypatch):
    host, port = ENDPOINT.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.fail(f"no AWS API server at {ENDPOINT}: run scripts/services.sh start s3")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL_SECRETS_MANAGER": ENDPOINT}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name="us-east-1")
    name = f"etl/test/{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString=json.dumps({"password": "pa55-from-aws"}))
    yield name
    client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.mark.integration
def test_aws_references_in_the_environment_are_resolved(secretsmanager):
    environ = {"ETL_PG_PASSWORD": f"aws-sm://{secretsmanager}#password",
               "WHOLE": f"aws-sm://{secretsmanager}", "ETL_WAREHOUSE": "s3a://lake/w"}
    assert secrets.resolve_environment(environ) == ["ETL_PG_PASSWORD", "WHOLE"]
    assert environ == {"ETL_PG_PASSWORD": "pa55-from-aws", "WHOLE": '{"password": "pa55-from-aws"}',
                       "ETL_WAREHOUSE": "s3a://lake/w"}
    with pytest.raises(SecretError, match=r"^cannot read secret aws-sm://etl/missing: "
                                          r"ResourceNotFoundException$"):
        secrets.resolve_environment({"X": "aws-sm://etl/missing"})
    with pytest.raises(SecretError, match=rf"^secret aws-sm://{secretsmanager}#user is not JSON "
                                          r"with key 'user'$"):
        secrets.resolve_overrides([f"params.user=aws-sm://{secretsmanager}#user"])


@pytest.fixture()
def gcp(monkeypatch):
    """The metadata server's token endpoint and Secret Manager's access endpoint."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path.endswith("/service-accounts/default/token"):
                assert self.headers["Metadata-Flavor"] == "Google"
                body = {"access_token": "tok-123", "expires_in": 3599}
            elif self.path == "/v1/projects/p/secrets/pg/versions/latest:access":
                data = base64.b64encode(json.dumps({"password": "pa55-from-gcp"}).encode())
                body = {"name": "projects/p/secrets/pg/versions/1",
                        "payload": {"data": data.decode()}}
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(secrets.METADATA_HOST, address)
    monkeypatch.setenv(secrets.SECRETMANAGER_ENDPOINT, f"http://{address}")
    yield seen
    server.shutdown()


def test_gcp_references_are_resolved_with_the_vms_token(gcp):
    assert secrets.resolve_overrides(["a=1", "params.pw=gcp-sm://projects/p/secrets/pg#password"]
                                     ) == ["a=1", "params.pw=pa55-from-gcp"]
    assert gcp[-1] == ("/v1/projects/p/secrets/pg/versions/latest:access", "Bearer tok-123")
    with pytest.raises(SecretError, match=r"^cannot read secret gcp-sm://projects/p/secrets/x: "
                                          r"HTTP 404$"):
        secrets.resolve_overrides(["params.pw=gcp-sm://projects/p/secrets/x"])


@pytest.fixture()
def restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.integration
def test_etl_run_resolves_references_before_reading_conf(spark, tmp_path, secretsmanager, capsys,
                                                         monkeypatch, restore_logging):
    """The job fails while the file its parameter names exists: the parameter came from the
    secret, resolved by `etl run`; an unreadable secret stops the run before Spark (exit 1)."""
    conf = make_conf(tmp_path, tmp_path / "w", {"probe": {"write": False}})
    marker = tmp_path / "marker"
    marker.touch()
    client = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name="us-east-1")
    client.put_secret_value(SecretId=secretsmanager,
                            SecretString=json.dumps({"password": str(marker)}))
    monkeypatch.setenv("ETL_PROBE_PASSWORD", f"aws-sm://{secretsmanager}#password")
    code = main(["--conf-dir", str(conf), "run", "probe",
                 "--set", f"params.fail_while_exists=aws-sm://{secretsmanager}#password"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == "etl: run failed: RuntimeError: probe: told to fail"
    assert os.environ["ETL_PROBE_PASSWORD"] == str(marker)

    code = main(["--conf-dir", str(conf), "run", "probe",
                 "--set", "params.fail_while_exists=aws-sm://etl/missing"])
    assert code == 1
    assert capsys.readouterr().err == (
        "etl: SecretError: cannot read secret aws-sm://etl/missing: ResourceNotFoundException\n")
