"""Seed 002's knowledge-base ingest as `pipelines/genai_knowledge_base.yaml` runs it, under dag.test():
`extract` is mapped over the folders `plan_sources` finds when the run starts, one named instance
per folder (and one for the files at the top), reading only documents changed since the last
publication. A folder added later is ingested by the next run with no spec change; a folder whose
name is Jinja stays a name; a file that cannot be read fails its folder's instance, by path."""

from __future__ import annotations

import shutil
import time

import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.run import run_pipeline
from pipespec.tasklib import storage
from pipespec.tasklib.published import latest
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.slow  # four data DAG runs

PUBLISHES = "s3://content/knowledge-base/curated/"
SHIPPED = {"kb__brand-voice", "kb__faq", "kb__products", "kb"}  # three folders and README.md at the top


@pytest.fixture
def examples(tmp_path, monkeypatch):
    ensure_db()
    copy = tmp_path / "pipelines"
    shutil.copytree(EXAMPLES, copy)
    spec = copy / "genai_knowledge_base.yaml"  # a failed extract fails the run now, not after three retries
    spec.write_text(spec.read_text() + "retries: {count: 0}\n")
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(copy))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))  # s3://content on local disk
    monkeypatch.setenv("AIRFLOW_VAR_KB_SECRET", "leaked-if-rendered")
    return copy


def run(examples):
    [outcome] = run_pipeline(examples / "genai_knowledge_base.yaml", until="data", echo=lambda _: None)
    return outcome


def instances(outcome) -> dict[str, str]:
    return {label: state for task, label, state in outcome.tasks if task == "extract" and label}


def test_the_knowledge_base_is_ingested_per_folder_found_at_run_time(examples, capfd):
    kb = examples / "data" / "knowledge_base"

    first = run(examples)
    assert first.state == "success", first.tasks
    assert instances(first) == dict.fromkeys(SHIPPED, "success")
    published = latest(PUBLISHES)
    assert published is not None and published.data.rows == 7
    assert set(published.manifest["sources"]) == SHIPPED
    table = storage.read_table(published.data.to_dict()).to_pylist()
    assert {row["label"] for row in table} == {"brand-voice", "faq", "products", "knowledge_base"}  # the folder a file is in

    second = run(examples)  # nothing changed: every instance runs, none reads a document
    assert second.state == "success" and instances(second) == dict.fromkeys(SHIPPED, "success")
    assert (second.outputs["measure"]["passed"], second.outputs["measure"]["new_rows"]) == (False, 0)

    time.sleep(1.1)  # file times have second precision: the new documents must be strictly newer
    for folder, text in (("Legal Notes", "Our terms apply to every order placed on the site."),
                         ("{{ var.value.kb_secret }}", "A folder whose name looks like a template.")):
        (kb / folder).mkdir()
        (kb / folder / "doc.md").write_text(text)
    third = run(examples)
    assert third.state == "success", third.tasks
    added = set(instances(third)) - SHIPPED
    assert len(added) == 2 and all(name.startswith(("kb__legal_notes_", "kb__var_value_kb_secret_")) for name in added)
    assert third.outputs["measure"]["new_rows"] == 2
    rows = storage.read_table(latest(PUBLISHES).data.to_dict()).to_pylist()
    paths = {row["path"] for row in rows}
    assert "data/knowledge_base/{{ var.value.kb_secret }}/doc.md" in paths  # read where it is, never rendered
    assert not any("leaked-if-rendered" in str(value) for row in rows for value in row.values())

    time.sleep(1.1)
    (kb / "faq" / "broken.txt").write_bytes(b"\xff\xfe not utf-8 \xc3\x28")
    capfd.readouterr()
    fourth = run(examples)
    assert fourth.state == "failed"
    assert instances(fourth)["kb__faq"] == "failed" and instances(fourth)["kb__products"] == "success"
    assert "data/knowledge_base/faq/broken.txt: not UTF-8 text" in capfd.readouterr().out  # the task log
    assert latest(PUBLISHES).data.rows == 2  # the third run's publication stands
