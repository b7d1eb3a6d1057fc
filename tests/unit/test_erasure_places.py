"""Where `etl forget` looks for a subject's value (etl.erasure.places), from the jobs' YAML alone;
and the command's checks before Spark starts."""

from __future__ import annotations

import pytest

from etl.cli import main
from etl.config import load_job_config
from etl.context import Warehouse
from etl.erasure import places, subject_of
from etl.flow.plan import make_plan

WH = "/wh"


def where(job: str, subject: str, conf_dir) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """Each place: kind, name, path, the key's expression, and what is set to null there (the
    columns of a table, the fields of a quarantined ``record``; none: the rows go)."""
    config = load_job_config(job, env="local", directory=conf_dir)
    found = places(make_plan(config), Warehouse.at(WH), subject_of(config, subject))
    return [(p.kind, p.name, p.path, p.expression, p.null_columns or p.record_nulls)
            for p in found]


def test_an_aircraft_is_nulled_in_flights_and_deleted_from_planes(conf_dir):
    record = "get_json_object(record, '$.tailnum')"
    assert where("flights", "aircraft", conf_dir) == [
        ("bronze", "flights", f"{WH}/bronze/flights", "`tailnum`", ("tailnum",)),
        ("bronze", "planes", f"{WH}/bronze/planes", "`tailnum`", ()),
        ("silver", "silver_flights", f"{WH}/silver/flights", "`tailnum`",
         ("tailnum", "plane_manufacturer", "plane_model", "plane_year")),
        ("quarantine", "flights", f"{WH}/quarantine/flights", record, ("tailnum",)),
        ("quarantine", "planes", f"{WH}/quarantine/planes", record, ()),
        ("dead letters", "flights", f"{WH}/_etl/dead_letters", "reason", ()),
    ]


def test_a_customer_s_rows_go_from_staging_silver_and_quarantine(conf_dir):
    assert where("shop", "customer", conf_dir) == [
        ("staged", "customers", f"{WH}/staging/customers", "`id`", ()),
        ("staged", "orders", f"{WH}/staging/orders", "`customer_id`", ()),
        ("silver", "silver_customers", f"{WH}/silver/customers", "`id`", ()),
        ("silver", "silver_orders", f"{WH}/silver/orders", "`customer_id`", ()),
        ("quarantine", "customers", f"{WH}/quarantine/customers",
         "get_json_object(record, '$.id')", ()),
        ("quarantine", "orders", f"{WH}/quarantine/orders",
         "get_json_object(record, '$.customer_id')", ()),
        ("dead letters", "shop", f"{WH}/_etl/dead_letters", "reason", ()),
    ]


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--subject", "client", "--value", "7"], {"ETL_PII_KEY": "k" * 16},
     "etl: error: --subject: job shop has no subject 'client' (subjects: customer)\n"),
    (["--subject", "customer", "--value", "7"], {},
     "etl: error: {job}: personal_data.key_env: the job declares personal data: set ETL_PII_KEY "
     "to its key (a value or a secret reference such as aws-sm://ID#KEY)\n"),
    (["--subject", "customer", "--value", ""], {"ETL_PII_KEY": "k" * 16},
     "etl: error: --value: give the subject's key to erase\n"),
])
def test_bad_arguments_exit_2_before_spark_starts(conf_dir, monkeypatch, capsys, argv, env,
                                                  message):
    monkeypatch.delenv("ETL_PII_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    code = main(["--conf-dir", str(conf_dir), "forget", "shop", *argv])

    assert code == 2
    assert capsys.readouterr().err == message.format(job=conf_dir / "jobs" / "shop.yml")


def test_rest_pages_lose_the_records_holding_the_value_at_their_records_path(spark, tmp_path):
    import json

    from etl.erasure import _rewrite_pages

    def page(number: int, items: list[object]) -> str:
        body = {"result": {"items": items, "total": 9}}
        return json.dumps({"page": number, "url": f"http://api/x?page={number}",
                           "body": json.dumps(body)}) + "\n"

    original = (page(1, [{"id": 2, "name": "a"}, {"id": 3, "name": "b"}])
                + page(2, [{"id": "2", "name": "c"}, {"name": "no id"}, "not a record"])
                + page(3, [{"id": 4}]))
    for nulls, expected in [
        ((), [[{"id": 3, "name": "b"}], [{"name": "no id"}, "not a record"], [{"id": 4}]]),
        (("id", "name"), [[{"id": None, "name": None}, {"id": 3, "name": "b"}],
                          [{"id": None, "name": None}, {"name": "no id"}, "not a record"],
                          [{"id": 4}]]),
    ]:
        pages = tmp_path / f"nulls-{len(nulls)}" / "pages.jsonl"  # written here by Python only
        pages.parent.mkdir()
        pages.write_text(original)
        assert _rewrite_pages(spark, [str(pages)], "result.items", "id", "2".__eq__, nulls,
                              dry_run=True) == (2, [str(pages)])
        assert pages.read_text() == original

        assert _rewrite_pages(spark, [str(pages)], "result.items", "id", "2".__eq__,
                              nulls) == (2, [str(pages)])

        written = [json.loads(line) for line in pages.read_text().splitlines()]
        assert [(p["page"], p["url"]) for p in written] == [
            (n, f"http://api/x?page={n}") for n in (1, 2, 3)]
        assert [json.loads(p["body"]) for p in written] == [
            {"result": {"items": items, "total": 9}} for items in expected]
