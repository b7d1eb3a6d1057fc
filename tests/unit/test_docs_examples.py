"""The YAML examples of docs/sources.md and docs/writers.md load as they are: each block is a
job's `sources:` or `targets:` section, converted and checked by the configuration loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from etl.config import load_job_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def yaml_blocks(name: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


@pytest.mark.parametrize(("name", "count"), [("sources.md", 2), ("writers.md", 4)])
def test_every_yaml_example_loads(tmp_path, name, count):
    blocks = yaml_blocks(name)
    assert len(blocks) == count
    for i, block in enumerate(blocks):
        conf = tmp_path / f"conf{i}"
        (conf / "jobs").mkdir(parents=True)
        (conf / "base.yml").write_text("")
        (conf / "local.yml").write_text("")
        (conf / "jobs" / "docs.yml").write_text(
            yaml.safe_dump({"job": {"name": "docs", "entrypoint": "x:y"}}) + block)

        config = load_job_config("docs", directory=conf, environ={})

        section = yaml.safe_load(block)
        assert sorted(config.sources) + sorted(config.targets) == sorted(
            (section.get("sources") or {}) | (section.get("targets") or {}))
