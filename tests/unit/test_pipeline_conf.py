"""Pipeline configuration: dependency order, retry policy, and clear errors for bad files."""

from __future__ import annotations

import pytest

from etl.errors import ConfigError
from etl.pipeline import RetryPolicy, load_pipeline
from tests.orchestration_conf import make_conf

JOBS = {"a": {}, "b": {}, "c": {}, "d": {}}


def conf_with(tmp_path, document):
    return make_conf(tmp_path, tmp_path / "w", JOBS, {"p": document})


def test_order_follows_dependencies_then_file_order(tmp_path):
    conf = conf_with(tmp_path, {"pipeline": {"name": "p", "retries": 2, "retry_delay_s": 10},
                                "jobs": {"d": {"depends_on": ["b", "c"]}, "c": {},
                                         "b": {"depends_on": ["a"], "retries": 0}, "a": {}}})
    pipeline = load_pipeline("p", conf)
    assert pipeline.order() == ["c", "a", "b", "d"]
    assert pipeline.retry_policy("b") == RetryPolicy(retries=0, delay_s=10.0, backoff=2.0,
                                                     max_delay_s=600.0)
    assert pipeline.retry_policy("a") == RetryPolicy(retries=2, delay_s=10.0, backoff=2.0,
                                                     max_delay_s=600.0)


def test_backoff_is_capped():
    policy = RetryPolicy(retries=5, delay_s=10, backoff=3, max_delay_s=60)
    assert [policy.delay(n) for n in range(1, 5)] == [10, 30, 60, 60]


@pytest.mark.parametrize("document, message", [
    ({"pipeline": {"name": "p"}, "jobs": {"a": {"depends_on": ["zz"]}}},
     ("pipelines/p.yml: jobs.a.depends_on: depends on 'zz', which is not a job of this pipeline "
     "(jobs: a)")),
    ({"pipeline": {"name": "p"}, "jobs": {"nope": {}}},
     "pipelines/p.yml: jobs.nope: unknown job 'nope' (known jobs: a, b, c, d)"),
    ({"pipeline": {"name": "p"}, "jobs": {"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}}},
     "pipelines/p.yml: jobs: dependency cycle: a -> b -> a"),
    ({"pipeline": {"name": "p", "schedule": "every day"}, "jobs": {"a": {}}},
     ("pipelines/p.yml: pipeline.schedule: expected a cron expression of 5 fields or one of "
     "@daily, @hourly, @monthly, @once, @weekly, @yearly, got 'every day'")),
    ({"pipeline": {"name": "p", "retires": 2}, "jobs": {"a": {}}},
     ("pipelines/p.yml: pipeline.retires: unknown key (allowed: catchup, description, "
     "max_retry_delay_s, name, retries, retry_backoff, retry_delay_s, schedule, start_date, "
     "target, timeout_s)")),
    ({"pipeline": {"name": "other"}, "jobs": {"a": {}}},
     "pipelines/p.yml: pipeline.name: names pipeline 'other' but the file is for 'p'"),
])
def test_bad_pipeline_files_are_named(tmp_path, document, message):
    conf = conf_with(tmp_path, document)
    with pytest.raises(ConfigError) as info:
        load_pipeline("p", conf)
    assert str(info.value) == f"{conf}/{message}"


def test_unknown_pipeline(tmp_path):
    conf = conf_with(tmp_path, {"pipeline": {"name": "p"}, "jobs": {"a": {}}})
    with pytest.raises(ConfigError) as info:
        load_pipeline("nightly", conf)
    assert str(info.value) == f"{conf}/pipelines/nightly.yml: unknown pipeline 'nightly' (known pipelines: p)"
