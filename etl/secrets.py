"""Secret references: how a secret reaches a job on a cluster without its value travelling.

A reference names a secret in a secrets manager; the command that runs the job (``etl run``,
``etl pipeline run``), on the machine where it runs, replaces it by the secret's value:

* ``aws-sm://SECRET_ID`` or ``aws-sm://SECRET_ID#KEY``: AWS Secrets Manager (the id or the ARN;
  ``#KEY`` takes one key of a JSON secret), read with boto3 and the machine's credentials (the
  EMR instance profile, the EMR Serverless job role);
* ``gcp-sm://projects/P/secrets/S`` (the ``latest`` version) or ``.../versions/V``, optionally
  with ``#KEY``: GCP Secret Manager, read through its REST API with the token of the VM's
  service account from the metadata server (the Dataproc cluster's service account).

``etl submit`` and ``etl pipeline export`` pass references on and refuse values: a
``deploy.environment`` variable or a ``--set`` key that looks like a secret must be a reference
(`looks_secret_name`, `looks_secret_value`), so no secret is in a step's arguments, a job run's
parameters, Dataproc properties, a DAG file or ``--dry-run`` output.

Example::

    resolve_environment()    # ETL_PG_PASSWORD=aws-sm://etl/prod/pg#password -> its value
    resolve_overrides(["sources.api.rest.headers.X-Key=aws-sm://etl/api#key"])
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from etl.errors import ConfigError, SecretError

AWS = "aws-sm://"
GCP = "gcp-sm://"
_GCP_NAME = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")
#: Words in a variable or setting name that say it holds a secret.
_SECRET_WORDS = re.compile(
    r"(?i)(passw(or)?d|secret|token|api[._-]?key|access[._-]?key|private[._-]?key|credential"
    r"|session[._-]?key|client[._-]?secret)")
#: Last parts of setting names with those words that hold no secret but name one.
_NOT_SECRET = re.compile(r"(?i)^(.*_env|secret_id|secret_key|credentials_provider)$")
#: Hadoop-style names whose last two parts say secret (``fs.s3a.secret.key``).
_SECRET_PAIR = re.compile(r"(?i)(secret|access|session|account|private)\.(key|token)")
#: Values that are secrets whatever their name.
_SECRET_VALUES = re.compile(
    r"(AKIA|ASIA)[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/\s:@]+:[^/\s@]+@"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abposr]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}")
#: GCP endpoints (the metadata server as google-auth finds it; a local server in tests).
METADATA_HOST = "GCE_METADATA_HOST"
SECRETMANAGER_ENDPOINT = "ETL_GCP_SECRETMANAGER_ENDPOINT"


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference: the store, the secret's id or name, and the JSON key (or empty)."""

    store: Literal["aws", "gcp"]
    name: str
    key: str = ""

    def __str__(self) -> str:
        prefix = AWS if self.store == "aws" else GCP
        return f"{prefix}{self.name}{'#' + self.key if self.key else ''}"


def parse_reference(text: str) -> SecretRef | None:
    """The reference ``text`` is, or None when it is not one; a malformed one is a
    `ConfigError`."""
    for prefix, store in ((AWS, "aws"), (GCP, "gcp")):
        if text.startswith(prefix):
            name, _, key = text[len(prefix):].partition("#")
            if not name or (store == "gcp" and not _GCP_NAME.match(name)):
                raise ConfigError(f"not a secret reference: {text!r} (expected aws-sm://ID[#KEY] "
                                  "or gcp-sm://projects/P/secrets/S[/versions/V][#KEY])")
            return SecretRef(store, name, key)  # type: ignore[arg-type]
    return None


def is_reference(value: object) -> bool:
    return isinstance(value, str) and parse_reference(value) is not None


def looks_secret_name(name: str) -> bool:
    """Whether a variable or setting name says it holds a secret (``ETL_PG_PASSWORD``,
    ``fs.s3a.secret.key``; not ``password_env`` or ``secret_id``, which name one)."""
    parts = name.split(".")
    if _NOT_SECRET.match(parts[-1]):
        return False
    if _SECRET_WORDS.search(parts[-1]):
        return True
    return len(parts) > 1 and bool(_SECRET_PAIR.fullmatch(".".join(parts[-2:])))


def looks_secret_value(value: str) -> bool:
    """Whether a value is a credential whatever its name (an AWS access key id, a private key, a
    URL with a password, a GitHub, Slack or Google API token)."""
    return bool(_SECRET_VALUES.search(value))


def resolve(reference: SecretRef) -> str:
    """The secret's value (one key of it for ``#KEY``); `SecretError` naming the reference."""
    text = _read_aws(reference) if reference.store == "aws" else _read_gcp(reference)
    if not reference.key:
        return text
    try:
        value = json.loads(text)[reference.key]
    except (ValueError, KeyError, TypeError):
        raise SecretError(f"secret {reference} is not JSON with key {reference.key!r}") from None
    return value if isinstance(value, str) else json.dumps(value)


def resolve_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Replace every variable of ``environ`` (default: this process's) whose value is a
    reference by the secret; return the names replaced."""
    env = os.environ if environ is None else environ
    replaced = []
    for name, value in list(env.items()):
        try:
            reference = parse_reference(value)
        except ConfigError as exc:
            raise ConfigError(str(exc), key=f"environment variable {name}") from None
        if reference is not None:
            env[name] = resolve(reference)
            replaced.append(name)
    return replaced


def resolve_overrides(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """``--set KEY=VALUE`` items with each reference value replaced by the secret."""
    resolved = []
    for item in overrides:
        key, sep, value = item.partition("=")
        try:
            reference = parse_reference(value) if sep else None
        except ConfigError as exc:
            raise ConfigError(str(exc), key=f"--set {key}") from None
        resolved.append(f"{key}={resolve(reference)}" if reference else item)
    return resolved


def _read_aws(reference: SecretRef) -> str:
    import boto3  # type: ignore[import-untyped]
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    arn = reference.name.split(":")
    region = arn[3] if reference.name.startswith("arn:") and len(arn) > 3 else None
    try:
        client = boto3.client("secretsmanager", region_name=region)
        return str(client.get_secret_value(SecretId=reference.name)["SecretString"])
    except ClientError as exc:
        raise SecretError(f"cannot read secret {reference}: {exc.response['Error']['Code']}") \
            from None
    except BotoCoreError as exc:  # no credentials, no region, no network
        raise SecretError(f"cannot read secret {reference}: {type(exc).__name__}") from None


def _get_json(url: str, headers: dict[str, str], what: str) -> Any:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
        raise SecretError(f"cannot read secret {what}: {reason}") from None


def _read_gcp(reference: SecretRef) -> str:
    metadata = os.environ.get(METADATA_HOST, "metadata.google.internal")
    token = _get_json(f"http://{metadata}/computeMetadata/v1/instance/service-accounts/default/"
                      "token", {"Metadata-Flavor": "Google"}, str(reference))["access_token"]
    name = reference.name if "/versions/" in reference.name else f"{reference.name}/versions/latest"
    endpoint = os.environ.get(SECRETMANAGER_ENDPOINT, "https://secretmanager.googleapis.com")
    answer = _get_json(f"{endpoint.rstrip('/')}/v1/{urllib.parse.quote(name)}:access",
                       {"Authorization": f"Bearer {token}"}, str(reference))
    try:
        return base64.b64decode(answer["payload"]["data"]).decode()
    except (KeyError, TypeError, ValueError):
        raise SecretError(f"cannot read secret {reference}: unexpected answer") from None
