"""``etl state show|set|reset`` on a warehouse of the test's own."""

from __future__ import annotations

import pytest

from etl.cli import main


@pytest.fixture()
def warehouse(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_WAREHOUSE", str(tmp_path / "wh"))
    return tmp_path / "wh"


def state(capsys, conf_dir, *args: str) -> tuple[int, str, str]:
    code = main(["--conf-dir", str(conf_dir), "state", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_set_show_and_reset(capsys, conf_dir, warehouse):
    assert state(capsys, conf_dir, "show", "shop") == (0, "shop: no watermarks stored\n", "")

    assert state(capsys, conf_dir, "set", "shop", "orders", "2026-01-02 03:04:05")[:2] == (
        0, "shop/orders: watermark on updated_at set to 2026-01-02 03:04:05\n")
    state(capsys, conf_dir, "set", "shop", "customers", "2026-01-01 00:00:00")
    code, out, _ = state(capsys, conf_dir, "show", "shop")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["source", "column", "kind", "value", "run_id", "updated_at"]
    assert [line.split()[:5] for line in lines[2:]] == [
        ["customers", "updated_at", "timestamp", "2026-01-01", "00:00:00"],
        ["orders", "updated_at", "timestamp", "2026-01-02", "03:04:05"],
    ]

    assert state(capsys, conf_dir, "reset", "shop", "orders")[:2] == (
        0, "shop/orders: 1 watermark(s) removed; the next run extracts in full\n")
    assert state(capsys, conf_dir, "reset", "shop")[:2] == (
        0, "shop: 1 watermark(s) removed; the next run extracts in full\n")
    assert state(capsys, conf_dir, "show", "shop")[1] == "shop: no watermarks stored\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "shop", "orders", "soon"),
         ("etl: error: VALUE: cannot read 'soon' as an integer, a date (YYYY-MM-DD) or a "
         "timestamp (YYYY-MM-DD HH:MM:SS)\n")),
        (("set", "shop", "payments", "1"),
         ("etl: error: {conf}/jobs/shop.yml: sources.payments: no source 'payments'; configured: "
         "['customers', 'order_items', 'orders']\n")),
        (("reset", "flights", "flights"),
         ("etl: error: {conf}/jobs/flights.yml: sources.flights: not an incremental source "
         "(no jdbc.incremental)\n")),
    ],
)
def test_bad_arguments_exit_2_with_one_message(capsys, conf_dir, warehouse, args, message):
    assert state(capsys, conf_dir, *args) == (2, "", message.replace("{conf}", str(conf_dir)))
    assert not warehouse.exists()
