"""Each step of a run counts its own Spark jobs and tasks (`etl.runlog.StepJobs`), also when
runs share the SparkContext from several threads, and gives back the job group it replaced; a
run's stages are summed from the stages it ran alone (`etl.runlog.StageTracker`). Work a step
spreads over threads (`etl.session.in_threads`) counts in the step, with the run's log
context."""

from __future__ import annotations

import threading

import pytest
import structlog

from etl.context import RunContext, Warehouse
from etl.logs import run_context as log_context
from etl.runlog import StageTracker, StepJobs
from etl.session import in_threads


def run_context(spark, tmp_path, run_id: str) -> RunContext:
    ctx = RunContext(job="steps", env="test", warehouse=Warehouse.at(str(tmp_path)),
                     landing=str(tmp_path), run_id=run_id)
    ctx.step_jobs = StepJobs(spark, run_id)
    return ctx


def count_in_partitions(spark, partitions: int) -> int:
    """One Spark job of one stage with ``partitions`` tasks."""
    return spark.sparkContext.parallelize(range(100), partitions).count()


def test_a_step_counts_the_jobs_and_tasks_it_ran(spark, tmp_path):
    ctx = run_context(spark, tmp_path, "r1")
    with ctx.step("extract"):
        count_in_partitions(spark, 3)
        count_in_partitions(spark, 2)
    with ctx.step("publish"):
        pass
    with ctx.step("audit"):
        count_in_partitions(spark, 4)

    assert [(s.name, s.spark_jobs, s.spark_tasks) for s in ctx.steps] == [
        ("extract", 2, 5), ("publish", 0, 0), ("audit", 1, 4)]


def test_the_callers_job_group_is_given_back(spark, tmp_path):
    sc = spark.sparkContext
    sc.setJobGroup("caller", "the caller's jobs")
    try:
        ctx = run_context(spark, tmp_path, "r2")
        with ctx.step("extract"):
            assert sc.getLocalProperty("spark.jobGroup.id") == "r2:extract"
        assert (sc.getLocalProperty("spark.jobGroup.id"),
                sc.getLocalProperty("spark.job.description")) == ("caller", "the caller's jobs")
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        sc.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]


def test_runs_in_parallel_threads_count_only_their_own_jobs(spark, tmp_path):
    barrier = threading.Barrier(2)
    contexts = {n: run_context(spark, tmp_path / n, f"run-{n}") for n in ("a", "b")}
    jobs = {"a": 3, "b": 1}

    def run(name: str) -> None:
        with contexts[name].step("transform"):
            barrier.wait()  # both steps are open before either runs a job
            for _ in range(jobs[name]):
                count_in_partitions(spark, 2)
            barrier.wait()

    threads = [threading.Thread(target=run, args=(n,)) for n in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert {n: (c.steps[0].spark_jobs, c.steps[0].spark_tasks) for n, c in contexts.items()} == {
        "a": (3, 6), "b": (1, 2)}


def test_work_spread_over_threads_counts_in_the_step_with_the_runs_log_context(spark, tmp_path):
    ctx = run_context(spark, tmp_path, "r3")
    barrier = threading.Barrier(3)  # the three items run at the same time

    def work(partitions: int) -> tuple[int, str | None, dict]:
        barrier.wait()
        return (count_in_partitions(spark, partitions),
                spark.sparkContext.getLocalProperty("spark.jobGroup.id"),
                structlog.contextvars.get_contextvars())

    with log_context(job="steps", run_id="r3"), ctx.step("extract"):
        results = in_threads(work, [1, 2, 3], threads=3)

    assert results == [(100, "r3:extract", {"job": "steps", "run_id": "r3"})] * 3
    assert (ctx.steps[0].spark_jobs, ctx.steps[0].spark_tasks) == (3, 6)


def test_every_item_runs_to_its_end_before_the_first_failure_in_their_order_is_raised(spark):
    done = []

    def work(item: str) -> str:
        if item.startswith("bad"):
            raise ValueError(f"{item} failed")
        done.append(item)
        return item.upper()

    assert in_threads(work, ["a", "b", "c"], threads=2) == ["A", "B", "C"]
    done.clear()
    with pytest.raises(ValueError, match=r"^bad-1 failed$"):
        in_threads(work, ["bad-1", "a", "bad-2", "b"], threads=2)
    assert sorted(done) == ["a", "b"]


def shuffle_by_parity(spark) -> list:
    """One job of two stages (a shuffle map stage of 3 tasks, a result stage of 2)."""
    rdd = spark.sparkContext.parallelize(range(100), 3).map(lambda x: (x % 2, x))
    return rdd.reduceByKey(lambda a, b: a + b, 2).collect()


def test_a_run_sums_only_the_stages_it_ran(spark):
    for partitions in (2, 3, 4):  # stages of earlier work the session keeps
        count_in_partitions(spark, partitions)
    shuffle_by_parity(spark)
    tracker = StageTracker(spark).begin()
    assert tracker.summary().stages == 0  # type: ignore[union-attr]

    assert sorted(shuffle_by_parity(spark)) == [(0, 2450), (1, 2500)]
    count_in_partitions(spark, 2)
    summary = tracker.summary()

    assert summary is not None
    assert summary.stages == 3
    assert summary.shuffle_write_bytes > 0
    assert summary.shuffle_read_bytes == summary.shuffle_write_bytes
    assert summary.spill_bytes == 0
