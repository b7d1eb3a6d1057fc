"""etl.logs: whatever a log call is given (message, fields, nested headers, an exception), a
credential never reaches the rendered line."""

from __future__ import annotations

import json

import pytest
import structlog

from etl import logs


@pytest.fixture(autouse=True)
def restore_logging():
    """Tests here configure structlog on capsys's stderr; put the configuration back after."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_credentials_in_urls_headers_fields_and_exceptions_are_masked(monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "Zq7-pw!x")
    monkeypatch.setenv("API_TOKEN", "tok-81a9")
    password, token = "Zq7-pw!x", "tok-81a9"
    logs.configure("json")
    log = logs.get_logger("etl.test")

    try:
        raise RuntimeError(f"connect to postgresql://etl:{password}@db:5432/etl failed")
    except RuntimeError:
        log.exception(
            f"load failed: jdbc:postgresql://db/etl?user=etl&password={password}",
            url=f"https://etl:{password}@api.example.com/v1/items?api_key={token}&since=7",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "nested": [{"X-Api-Key": token}]},
            request=f"GET /v1/items Authorization: Bearer {token}",
            password=password, attempt=2,
        )

    err = capsys.readouterr().err
    assert password not in err and token not in err
    line = json.loads(err)
    assert line["exception"].splitlines()[-1] == (
        "RuntimeError: connect to postgresql://etl:***@db:5432/etl failed")
    assert {k: v for k, v in line.items() if k not in ("timestamp", "exception")} == {
        "event": "load failed: jdbc:postgresql://db/etl?user=etl&password=***",
        "level": "error",
        "url": "https://etl:***@api.example.com/v1/items?api_key=***&since=7",
        "headers": {"Authorization": "***", "Accept": "application/json",
                    "nested": [{"X-Api-Key": "***"}]},
        "request": "GET /v1/items Authorization: Bearer ***",
        "password": "***",
        "attempt": 2,
    }


def test_a_logger_taken_before_any_configuration_redacts_too(monkeypatch, capsys):
    structlog.reset_defaults()
    monkeypatch.setenv("API_TOKEN", "tok-5c3e")

    logs.get_logger("etl.test").warning("retrying", header="X-Api-Key: tok-5c3e",
                                        env_var="API_TOKEN")

    err = capsys.readouterr().err
    assert "tok-5c3e" not in err
    assert "X-Api-Key: ***" in err and "API_TOKEN" in err


@pytest.mark.parametrize(("text", "expected"), [
    ("jdbc:postgresql://etl:s3cr@t@db:5432/etl?sslpassword=a&user=etl",
     "jdbc:postgresql://etl:***@db:5432/etl?sslpassword=***&user=etl"),
    ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': 'Basic ***'}"),
    ("https://h:8443/p?access_token=x1;client_secret=x2", "https://h:8443/p?access_token=***;client_secret=***"),
    ("password_env=ETL_PG_PASSWORD token_env=ITEMS_TOKEN", "password_env=ETL_PG_PASSWORD token_env=ITEMS_TOKEN"),
    ("postgresql://etl@db/etl", "postgresql://etl@db/etl"),
])
def test_redact_masks_values_and_keeps_names(text, expected):
    assert logs.redact(text) == expected
