"""Personal columns in the flow (docs/privacy.md): each layer's table holds the declared columns
in the form its layer's action says (keep, pseudonymise, mask, drop), bronze as landed unless
declared, a gold built from silver never gets the values back, and a pseudonym is never hashed
twice. A job that declares no hash needs no key; a missing key stops `etl run` before Spark."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality

from etl.cli import main
from etl.config import load_job_config
from etl.errors import ConfigError
from etl.flow.plan import make_plan
from etl.privacy import keyed_hash, keyed_hash_column
from etl.runner import run_job

ROOT = Path(__file__).resolve().parents[2]
KEY = "a-test-key-of-the-people-job"
LANDED = [  # id, name, email, phone, city as landed
    ("1", "Jane Doe", "jane.doe@example.com", "+31 6 1234", "Utrecht"),
    ("2", "Émile Zola", "emile@mail.example.fr", "+33 1 4321", "Paris"),
    ("3", "Li", None, None, None),
]
JOB = """\
job:
  name: people
sources:
  people:
    path: people
    pattern: "*.csv"
    kind: append
    options: {header: "true"}
    columns: [id, name, email, phone, city]
    bronze: bronze_people
    types: {id: int}
    required: [id]
targets:
  bronze_people: {layer: bronze, table: people}
  silver_people: {layer: silver, table: people, inputs: [people], mode: merge, keys: [id]}
  gold_people: {layer: gold, table: people, inputs: [silver_people], mode: overwrite}
personal_data:
  key_env: PEOPLE_KEY
  columns:
    people:
"""
ACTIONS = """\
      name: {silver: mask}
      email: {silver: pseudonymise, gold: pseudonymise}
      phone: {silver: drop}
      city: {silver: keep, gold: mask}
"""


@pytest.fixture()
def people(tmp_path: Path) -> Path:
    """A conf folder with the people job, and its one landed CSV file."""
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copy(ROOT / "conf" / name, conf / name)
    landing = tmp_path / "landing" / "people"
    landing.mkdir(parents=True)
    lines = ["id,name,email,phone,city"] + [",".join(v or "" for v in row) for row in LANDED]
    (landing / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def write_job(conf: Path, actions: str = ACTIONS) -> None:
    (conf / "jobs" / "people.yml").write_text(JOB + actions)


def config_of(conf: Path, *overrides: str):
    root = conf.parent
    return load_job_config("people", directory=conf, overrides=[
        f"paths.warehouse={root / 'warehouse'}", f"paths.landing={root / 'landing'}",
        "lineage.enabled=false", *overrides])


def table(spark, conf: Path, layer: str):
    path = conf.parent / "warehouse" / layer / "people"
    return spark.read.format("delta").load(str(path))


def test_each_layer_holds_its_form_and_gold_does_not_get_the_values_back(spark, people,
                                                                          monkeypatch):
    monkeypatch.setenv("PEOPLE_KEY", KEY)
    write_job(people)

    run_job(config_of(people), spark=spark)

    key = KEY.encode()
    landed = spark.createDataFrame(LANDED, "id string, name string, email string, "
                                          "phone string, city string")
    assert_df_equality(table(spark, people, "bronze").select(*landed.columns), landed,
                       ignore_row_order=True, ignore_nullable=True)
    silver = spark.createDataFrame(
        [(int(i), f"{name[0]}***", email and keyed_hash(key, email), city)
         for i, name, email, _, city in LANDED],
        "id int, name string, email string, city string")
    got = table(spark, people, "silver")
    assert "phone" not in got.columns
    assert_df_equality(got.select(*silver.columns), silver, ignore_row_order=True,
                       ignore_nullable=True)
    # gold is built from silver: the pseudonym as silver has it (not hashed again), the masked
    # name, the city masked by gold's own action (an e-mail's domain stays), no phone
    gold = spark.createDataFrame(
        [(1, "J***", keyed_hash(key, "jane.doe@example.com"), "U***"),
         (2, "É***", keyed_hash(key, "emile@mail.example.fr"), "P***"),
         (3, "L***", None, None)],
        "id int, name string, email string, city string")
    got = table(spark, people, "gold")
    assert "phone" not in got.columns
    assert_df_equality(got.select(*gold.columns), gold, ignore_row_order=True,
                       ignore_nullable=True)


def test_a_bronze_pseudonym_is_not_hashed_again_in_silver(spark, people, monkeypatch):
    monkeypatch.setenv("PEOPLE_KEY", KEY)
    write_job(people, "      email: {bronze: pseudonymise, silver: pseudonymise, gold: mask}\n")

    run_job(config_of(people), spark=spark)

    hashed = [(int(i), email and keyed_hash(KEY.encode(), email)) for i, _, email, _, _ in LANDED]
    expected = spark.createDataFrame(hashed, "id int, email string")
    for layer in ("bronze", "silver"):
        got = table(spark, people, layer).select("id", "email")
        assert_df_equality(got.withColumn("id", got["id"].cast("int")), expected,
                           ignore_row_order=True, ignore_nullable=True)
    # gold masks what silver holds: the pseudonym's first hex digit and ***
    masked = spark.createDataFrame([(i, h and f"{h[0]}***") for i, h in hashed],
                                   "id int, email string")
    assert_df_equality(table(spark, people, "gold").select("id", "email"), masked,
                       ignore_row_order=True, ignore_nullable=True)


def test_only_a_job_that_hashes_needs_the_key(people, monkeypatch, capsys):
    monkeypatch.delenv("PEOPLE_KEY", raising=False)
    write_job(people, "      name: {silver: mask}\n      phone: {silver: drop}\n")
    assert make_plan(config_of(people)).key is None

    write_job(people)
    code = main(["--conf-dir", str(people), "run", "people"])

    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"etl: error: {people / 'jobs' / 'people.yml'}: personal_data.key_env: the job declares "
        "personal data: set PEOPLE_KEY to its key (a value or a secret reference such as "
        "aws-sm://ID#KEY)")
    monkeypatch.setenv("PEOPLE_KEY", KEY)
    plan = make_plan(config_of(people))
    assert plan.key == KEY.encode()
    assert KEY not in repr(plan)
    assert plan.personal == {
        "silver_people": {"name": "mask", "email": "pseudonymise", "phone": "drop"},
        "gold_people": {"city": "mask"}}


@pytest.mark.parametrize(("declared", "message"), [
    ("      id: {silver: mask}\n",
     "targets.silver_people.keys: personal_data gives column 'id' of silver/people the action "
     "'mask', but targets.silver_people.keys needs its values (allowed there: keep, "
     "pseudonymise)"),
    ("      phone: {bronze: drop}\n",
     "personal_data.columns.people.phone.bronze: the flow types source 'people'\'s rows from "
     "its bronze table, which would have no 'phone': drop it in silver, or pseudonymise or mask "
     "it in bronze"),
], ids=["a key column is not masked", "a column the flow types from bronze is not dropped there"])
def test_an_action_that_breaks_the_flow_is_refused(people, monkeypatch, declared, message):
    monkeypatch.setenv("PEOPLE_KEY", KEY)
    write_job(people, declared)

    with pytest.raises(ConfigError) as error:
        make_plan(config_of(people))

    assert str(error.value) == f"{people / 'jobs' / 'people.yml'}: {message}"


def test_the_key_is_in_no_log_record_or_lineage_event(spark, people, monkeypatch, capfd):
    """Nor is anything it is trivially recovered from: the HMAC pads (the key XOR 0x36 and
    0x5C), as hex in either case; not even in the hash's Spark plan (explain, the UI, event
    logs), which names the function only."""
    monkeypatch.setenv("PEOPLE_KEY", KEY)
    write_job(people, "      email: {silver: pseudonymise}\n")

    run_job(config_of(people, "lineage.enabled=true", "lineage.spark_listener=true",
                      "logging.level=DEBUG"), spark=spark)

    padded = KEY.encode().ljust(64, b"\0")
    pads = [bytes(b ^ mask for b in padded).hex() for mask in (0x36, 0x5C)]
    forms = [KEY, KEY.encode().hex(), *pads, *(p.upper() for p in pads)]
    plan = spark.range(1).select(keyed_hash_column(KEY.encode(), "id"))._jdf.queryExecution()
    assert "hmac_sha256(" in plan.toString()
    assert [f for f in forms if f in plan.toString()] == []
    written = [(path, path.read_bytes().decode("utf-8", "replace"))
               for path in (people.parent / "warehouse").rglob("*") if path.is_file()]
    assert any("lineage" in str(path) for path, _ in written)
    output = capfd.readouterr()
    for where, text in [*written, ("stdout", output.out), ("stderr", output.err)]:
        assert [f for f in forms if f in text] == [], where
