"""The code blocks of the README and of every page of docs/ hold: Python examples run as written,
YAML examples parse (a whole job's YAML loads as configuration, with every check), the ``etl``
and ``make`` commands shown exist with the options shown, and links between pages point at files
and headings that exist."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from etl.cli import build_parser
from etl.config import load_job_config

ROOT = Path(__file__).resolve().parents[2]
#: Pages a person writes (the benchmark's report and notes are generated).
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md")
                                     if p.name not in ("BENCHMARKS.md", "benchmarks_notes.md"))]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", flags=re.S)


def blocks(kind: str) -> list[tuple[Path, str]]:
    return [(page, body) for page in PAGES for lang, body in BLOCK.findall(page.read_text())
            if lang == kind]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_page_has_examples_of_each_kind():
    assert {kind for kind in ("python", "yaml", "bash") if blocks(kind)} == {
        "python", "yaml", "bash"}
    assert len(PAGES) >= 7


def test_python_examples_run(spark):
    found = blocks("python")
    assert len(found) == 3
    for page, body in found:
        exec(compile(body, str(page), "exec"), {"spark": spark})


@pytest.mark.parametrize(("page", "body"), blocks("yaml"),
                         ids=lambda v: v.name if isinstance(v, Path) else "")
def test_yaml_examples_parse_and_load(tmp_path, page, body):
    """A whole job loads with every check; a part of a job (``sources``, ``targets``,
    ``quality``...) loads as the configuration of a job with its own entrypoint."""
    document = yaml.safe_load(body)
    assert isinstance(document, dict), f"{page.name}: a YAML example is not a mapping"
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copyfile(ROOT / "conf" / name, conf / name)
    if isinstance(document.get("job"), dict):
        job, text = document["job"]["name"], body
    elif set(document) & {"sources", "targets"}:
        job, text = "docs", "job: {name: docs, entrypoint: 'x:y'}\n" + body
    else:
        # settings of another kind (a pipeline, s3...): parsing is the check; the rules of
        # docs/quality.md are loaded into the flights job by test_quality_config.py
        return
    (conf / "jobs" / f"{job}.yml").write_text(text)
    config = load_job_config(job, directory=conf, environ={})
    assert sorted(config.sources) == sorted(document.get("sources") or {})
    assert sorted(config.targets) == sorted(document.get("targets") or {})


def commands(prefix: str) -> list[tuple[Path, list[str]]]:
    found = []
    for page, body in blocks("bash") + blocks(""):
        for line in body.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith(prefix) and not any(s in line for s in ("|", "...", "→")):
                found.append((page, shlex.split(line)))
    return found


def required(words: list[str]) -> list[str]:
    """A synopsis' words without its optional parts (``[--batch N]``)."""
    kept, depth = [], 0
    for word in words:
        if word.startswith("["):
            depth += 1
        if depth == 0:
            kept.append(word)
        if depth and word.endswith("]"):
            depth -= 1
    return kept


#: Placeholders of the synopses that must be values of a type: dates, counts, hours.
PLACEHOLDERS = {"D": "2013-01-01", "D1": "2013-01-01", "D2": "2013-01-31", "N": "2", "H": "168"}


def test_etl_commands_shown_exist_with_their_options():
    parser = build_parser()
    shown = commands("etl ")
    assert len(shown) >= 10
    for page, words in shown:
        try:
            parser.parse_args([PLACEHOLDERS.get(w, w) for w in required(words[1:])])
        except SystemExit as exc:
            if exc.code not in (0, None):
                pytest.fail(f"{page.name}: `{' '.join(words)}` is not a valid etl command")


def test_make_targets_shown_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    shown = {words[1] for _, words in commands("make ") if len(words) > 1}
    assert shown and shown <= targets, sorted(shown - targets)


def test_links_between_pages_point_at_files_and_headings():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: link to missing {target}"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading {target}"
