"""A reference's bronze table is typed once per state of that table (`TypedReferences`): the
same table at the same version gives the same typed rows, kept; a new version, a table created
again at the same path, or other settings type it again; a reference read ``narrow`` is not
kept, so the batch's keys still reach its scan."""

from __future__ import annotations

import shutil
from pathlib import Path

from chispa import assert_df_equality

from etl.config import load_job_config
from etl.context import RunContext, Warehouse
from etl.flow.build import TypedReferences, reference
from etl.flow.landing import Landed
from etl.flow.plan import make_plan

ROOT = Path(__file__).resolve().parents[2]


def setup(tmp_path: Path, *overrides: str):
    config = load_job_config("flights", directory=ROOT / "conf",
                             overrides=[f"paths.warehouse={tmp_path / 'wh'}", *overrides])
    warehouse = Warehouse.at(str(tmp_path / "wh"))
    ctx = RunContext(job="flights", env="test", warehouse=warehouse, landing="", run_id="r1")
    return make_plan(config), ctx, warehouse.table("bronze", "airlines")


def land(spark, path: str, rows: list[tuple[str | None, str]], mode: str = "append") -> None:
    spark.createDataFrame(rows, "carrier string, name string").write.format("delta").mode(
        mode).save(path)


def expected(spark, plan, ctx, path: str):
    """What the flow typed before: `reference` of the bronze table read as it is now."""
    rows = spark.read.format("delta").load(path)
    return reference(plan, ctx, Landed("airlines", rows))[0]


def test_the_same_version_gives_the_kept_rows_and_a_new_one_types_them_again(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    cache = TypedReferences()
    land(spark, path, [("AA", "American"), ("NA", "not a carrier")])  # NA: a missing value

    first = cache.get(spark, plan, ctx, "airlines", path)
    assert first.is_cached
    assert_df_equality(first, expected(spark, plan, ctx, path), ignore_row_order=True)
    assert first.count() == 1
    assert cache.get(spark, plan, ctx, "airlines", path) is first

    land(spark, path, [("UA", "United")])
    second = cache.get(spark, plan, ctx, "airlines", path)
    assert second is not first and not first.is_cached
    assert sorted(r.carrier for r in second.collect()) == ["AA", "UA"]
    assert_df_equality(second, expected(spark, plan, ctx, path), ignore_row_order=True)

    shutil.rmtree(path)  # created again at the same path: version 0 again, another table
    land(spark, path, [("DL", "Delta")])
    third = cache.get(spark, plan, ctx, "airlines", path)
    assert [r.carrier for r in third.collect()] == ["DL"]


def test_other_settings_type_it_again_and_a_narrow_reference_is_not_kept(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American"), ("9E", "")])
    cache = TypedReferences()
    kept = cache.get(spark, plan, ctx, "airlines", path)

    required_name, _, _ = setup(tmp_path, "sources.airlines.required=[carrier, name]")
    other = cache.get(spark, required_name, ctx, "airlines", path)
    assert other is not kept and kept.is_cached  # both kept: another key
    assert ([r.carrier for r in kept.orderBy("carrier").collect()],
            [r.carrier for r in other.collect()]) == (["9E", "AA"], ["AA"])

    narrow, _, _ = setup(tmp_path, "targets.silver_flights.narrow={airlines: {carrier: carrier}}")
    plain = cache.get(spark, narrow, ctx, "airlines", path)
    assert not plain.is_cached
    assert cache.get(spark, narrow, ctx, "airlines", path) is plain


def test_only_the_most_recently_used_are_kept(spark, tmp_path):
    cache = TypedReferences(limit=1)
    plan_a, ctx, path_a = setup(tmp_path / "a")
    plan_b, _, path_b = setup(tmp_path / "b")
    land(spark, path_a, [("AA", "American")])
    land(spark, path_b, [("UA", "United")])

    a = cache.get(spark, plan_a, ctx, "airlines", path_a)
    b = cache.get(spark, plan_b, ctx, "airlines", path_b)

    assert (a.is_cached, b.is_cached) == (False, True)
    assert cache.get(spark, plan_a, ctx, "airlines", path_a) is not a
