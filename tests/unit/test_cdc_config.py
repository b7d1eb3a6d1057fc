"""The ``cdc`` section of a source: the example of docs/sources.md loads typed, mistakes fail at load time
naming the file and the key; the paths a job derives from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl.config import CdcConfig, JdbcConfig, JdbcCredentials, SourceConfig, load_job_config
from etl.context import Warehouse
from etl.errors import ConfigError
from etl.flow.cdc import feed_table_path, tombstones_path

SOURCES_DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"
HEADER = "job:\n  name: sync\n  entrypoint: jobs.sync:run\n"


def readme_example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", SOURCES_DOC.read_text(), flags=re.S)
    # the example of both change-feed sources (the pg_logical section has one of its own)
    (block,) = [b for b in blocks if "type: pg_logical" in b and "type: delta_cdf" in b]
    return block


def write_job(tmp_path: Path, conf_dir: Path, sources: str) -> Path:
    root = tmp_path / "conf"
    (root / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        (root / name).write_text((conf_dir / name).read_text())
    (root / "jobs" / "sync.yml").write_text(HEADER + sources)
    return root


def test_readme_cdc_example_loads_typed(tmp_path, conf_dir):
    root = write_job(tmp_path, conf_dir, readme_example())

    config = load_job_config("sync", directory=root, environ={})

    assert config.sources["customers_feed"] == SourceConfig(
        type="delta_cdf", path="silver/customers",
        cdc=CdcConfig(keys=["id"], deletes="soft", output="scd1"),
    )
    assert config.sources["customers_log"] == SourceConfig(
        type="pg_logical",
        jdbc=JdbcConfig(
            url="jdbc:postgresql://127.0.0.1:25432/etl", driver="org.postgresql.Driver",
            table="shop.customers",
            credentials=JdbcCredentials(user_env="ETL_PG_USER", password_env="ETL_PG_PASSWORD"),
        ),
        cdc=CdcConfig(keys=["id"], slot="etl_shop_customers", deletes="hard", output="scd2"),
    )


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ("slot: etl_shop_customers", "slot: Shop-Customers", "sources.customers_log.cdc.slot",
     "expected lower-case letters, digits and _ (at most 63), got 'Shop-Customers'"),
    ("cdc: {keys: [id], deletes: soft", "cdc: {keys: [], deletes: soft",
     "sources.customers_feed.cdc.keys", "expected at least one key column"),
    ("path: silver/customers ", "path: '' ", "sources.customers_feed.path",
     "required value missing for a delta_cdf source (expected str)"),
    ("      table: shop.customers", "      query: SELECT 1", "sources.customers_log.jdbc.table",
     "required value missing for a pg_logical source (expected schema.table)"),
    ("    type: delta_cdf\n", "", "sources.customers_feed.cdc",
     "only a delta_cdf or pg_logical source has a cdc section"),
])
def test_cdc_mistakes_name_the_file_and_key(tmp_path, conf_dir, old, new, key, message):
    example = readme_example()
    assert example.count(old) == 1
    root = write_job(tmp_path, conf_dir, example.replace(old, new))

    with pytest.raises(ConfigError) as err:
        load_job_config("sync", directory=root, environ={})

    assert str(err.value) == f"{root / 'jobs' / 'sync.yml'}: {key}: {message}"


def test_wrong_delete_mode_names_the_choices(tmp_path, conf_dir):
    root = write_job(tmp_path, conf_dir, readme_example().replace("deletes: hard", "deletes: purge"))

    with pytest.raises(ConfigError) as err:
        load_job_config("sync", directory=root, environ={})

    assert str(err.value) == (f"{root / 'jobs' / 'sync.yml'}: sources.customers_log.cdc.deletes: "
                              "expected one of 'hard', 'soft', got 'purge' (str)")


def test_paths_a_job_derives_from_the_cdc_section():
    warehouse = Warehouse("/wh")
    assert feed_table_path(warehouse, SourceConfig(type="delta_cdf", path="silver/customers")) \
        == "/wh/silver/customers"
    assert feed_table_path(warehouse, SourceConfig(type="delta_cdf", path="s3a://b/t")) == "s3a://b/t"
    assert tombstones_path(warehouse, "sync", "customers") == "/wh/_etl/cdc/sync/customers/tombstones"


def test_astored_position_that_is_not_an_integer_is_a_state_error():
    import datetime as dt

    from etl.errors import StateError
    from etl.flow.cdc import stored_position
    from etl.watermarks import Watermark

    assert stored_position(Watermark("sync", "customers", "lsn", 42), "lsn") == 42
    assert stored_position(None, "lsn") is None
    with pytest.raises(StateError) as err:
        stored_position(Watermark("sync", "customers", "lsn", dt.date(2026, 1, 1)), "lsn")
    assert str(err.value) == (
        "source customers: the stored watermark is lsn = datetime.date(2026, 1, 1), expected an "
        "integer lsn (rewind it with `etl state set` or `etl state reset`)")
