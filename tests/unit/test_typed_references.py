"""A reference's bronze table is typed once per state of that table (`TypedReferences`): the
same table at the same version gives the same typed rows, kept; a new version, a table created
again at the same path, or other settings type it again; a reference read ``narrow`` is not
kept, so the batch's keys still reach its scan. Between processes the typed rows are stored
under ``_etl/typed_references``: a later process reads them instead of typing bronze, a new
state replaces them, and a folder that was never completed or a warehouse that refuses the
write only means typing again."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from chispa import assert_df_equality
from structlog.testing import capture_logs

from etl.config import load_job_config
from etl.context import RunContext, Warehouse
from etl.flow.build import STORED_SCHEMA, TypedReferences, reference
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


def test_runs_typing_the_same_state_at_once_share_one_kept_copy(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American"), ("UA", "United")])
    cache = TypedReferences()
    barrier = threading.Barrier(2)
    got = {}

    def get(name: str) -> None:
        barrier.wait()  # both ask before either has kept it
        got[name] = cache.get(spark, plan, ctx, "airlines", path)

    threads = [threading.Thread(target=get, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert got["a"] is got["b"] and got["a"].is_cached
    assert cache.get(spark, plan, ctx, "airlines", path) is got["a"]
    assert sorted(r.carrier for r in got["a"].collect()) == ["AA", "UA"]


def stored_folders(tmp_path: Path) -> dict[str, list[str]]:
    """Each stored state of the airlines reference: its folder's name, then the names of its
    files other than Parquet parts (which are listed as ``part``)."""
    folder = tmp_path / "wh" / "_etl" / "typed_references" / "flights" / "airlines"
    if not folder.exists():
        return {}
    return {state.name: sorted({"part" if f.name.startswith("part-") else f.name
                                for f in state.iterdir() if not f.name.startswith(".")})
            for state in folder.iterdir()}


def read_from(df, warehouse: str = "/wh/") -> set[str]:
    """The top folders of the ``warehouse`` (``_etl`` or ``bronze``) that ``df`` reads, from
    the roots of the file relations of its plan as analyzed (before the cache stands in for
    them)."""
    leaves = df._jdf.queryExecution().analyzed().collectLeaves()
    roots = set()
    for i in range(leaves.size()):
        paths = leaves.apply(i).relation().location().rootPaths()
        roots |= {str(paths.apply(j).toString()) for j in range(paths.size())}
    return {root.split(warehouse, 1)[1].split("/")[0] for root in roots}


def test_a_later_process_reads_the_stored_rows_until_the_table_changes(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American"), ("UA", "United"), ("NA", "not a carrier")])

    first = TypedReferences().get(spark, plan, ctx, "airlines", path)
    assert read_from(first) == {"bronze"}
    [(state, files)] = stored_folders(tmp_path).items()
    assert files == ["_SUCCESS", STORED_SCHEMA, "part"]

    later = TypedReferences().get(spark, plan, ctx, "airlines", path)  # another process
    assert read_from(later) == {"_etl"} and later.is_cached
    assert_df_equality(later, expected(spark, plan, ctx, path), ignore_row_order=True)
    assert sorted(r.carrier for r in later.collect()) == ["AA", "UA"]

    land(spark, path, [("DL", "Delta")])
    changed = TypedReferences().get(spark, plan, ctx, "airlines", path)
    assert read_from(changed) == {"bronze"}
    [(new_state, _)] = stored_folders(tmp_path).items()  # the earlier state's folder removed
    assert new_state != state
    after = TypedReferences().get(spark, plan, ctx, "airlines", path)
    assert read_from(after) == {"_etl"}
    assert sorted(r.carrier for r in after.collect()) == ["AA", "DL", "UA"]


def test_other_settings_do_not_read_rows_stored_under_the_earlier_ones(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American"), ("9E", "")])
    TypedReferences().get(spark, plan, ctx, "airlines", path)

    required_name, _, _ = setup(tmp_path, "sources.airlines.required=[carrier, name]")
    other = TypedReferences().get(spark, required_name, ctx, "airlines", path)
    assert read_from(other) == {"bronze"}
    assert [r.carrier for r in other.collect()] == ["AA"]


def test_nothing_is_stored_when_not_asked_and_an_unfinished_folder_is_not_read(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American")])

    TypedReferences().get(spark, plan, ctx, "airlines", path, store=False)
    assert stored_folders(tmp_path) == {}

    TypedReferences().get(spark, plan, ctx, "airlines", path)
    [(state, _)] = stored_folders(tmp_path).items()
    folder = tmp_path / "wh" / "_etl" / "typed_references" / "flights" / "airlines" / state
    (folder / STORED_SCHEMA).unlink()  # as a run stopped before the schema, written last
    again = TypedReferences().get(spark, plan, ctx, "airlines", path, store=False)
    assert read_from(again) == {"bronze"}
    assert [r.carrier for r in again.collect()] == ["AA"]


def test_a_warehouse_that_refuses_the_rows_only_means_typing_again(spark, tmp_path):
    plan, ctx, path = setup(tmp_path)
    land(spark, path, [("AA", "American")])
    blocker = tmp_path / "wh" / "_etl" / "typed_references" / "flights" / "airlines"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the reference's folder goes")

    with capture_logs() as logs:
        table = TypedReferences().get(spark, plan, ctx, "airlines", path)

    assert [r.carrier for r in table.collect()] == ["AA"]
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "typed reference not stored: the next run types it again"
    assert warning["path"].rsplit("/", 1)[0] == str(blocker)
    assert blocker.read_text() == "a file where the reference's folder goes"
