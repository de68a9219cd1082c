"""`dag.workspace: clean` (seed 003's storage clean-up before and after): Airflow's own
setup/teardown around every DAG of the spec, deleting the run's intermediate files whatever
happened, and removing only what killed runs left behind, never a live run's files."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.run import run_pipeline
from pipespec.schemas.check import check_file
from pipespec.tasklib import workspace
from pipespec.tasklib.context import RunContext
from tests.support.paths import EXAMPLES


def with_clean_workspace(tmp_path: Path, monkeypatch, sources: list[dict] | None = None) -> Path:
    """A scratch copy of `pipelines/` whose weekly_retrain cleans its workspace; work files under tmp_path."""
    copy = tmp_path / "pipelines"
    shutil.copytree(EXAMPLES, copy)
    spec_file = copy / "weekly_retrain.yaml"
    text = spec_file.read_text() + "\ndag: {workspace: clean}\n"
    for source in sources or []:
        text = text.replace("  sources:\n", f"  sources:\n    - {json.dumps(source)}\n", 1)
    spec_file.write_text(text)
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(copy))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    return spec_file


def rendered_dags(spec_file: Path) -> dict:
    from pipespec.airflow.dag import render_pipeline
    from pipespec.compiler.compile import compile_checked

    checked = check_file(spec_file)
    assert checked.ok, [d.message for d in checked.diagnostics]
    return {dag.dag_id.rsplit("__", 1)[1]: dag for dag in render_pipeline(compile_checked(checked))}


def test_every_dag_of_the_spec_is_wrapped_in_a_setup_and_a_teardown(tmp_path, monkeypatch):
    dags = rendered_dags(with_clean_workspace(tmp_path, monkeypatch))
    assert set(dags) == {"data", "train"}
    for dag in dags.values():
        setup, teardown = dag.get_task("workspace_setup"), dag.get_task("workspace_teardown")
        assert setup.is_setup and teardown.is_teardown
        firsts = {t.task_id for t in dag.tasks if t.upstream_task_ids == {"workspace_setup"}}
        assert firsts and all(not t.upstream_task_ids for t in dag.tasks if t.task_id == "workspace_setup")
        lasts = {t.task_id for t in dag.tasks if not t.downstream_task_ids}
        assert lasts == {"workspace_teardown"}  # every other leaf now feeds the teardown
    assert dags["data"].get_task("extract").upstream_task_ids == {"workspace_setup"}
    assert {"publish"} <= dags["data"].get_task("workspace_teardown").upstream_task_ids
    assert {"report", "rollback"} <= dags["train"].get_task("workspace_teardown").upstream_task_ids


@pytest.mark.slow
def test_the_teardown_deletes_the_runs_files_after_success_and_after_failure(tmp_path, monkeypatch):
    ensure_db()
    work = tmp_path / "work" / "weekly_retrain" / "weekly_retrain__data"
    spec_file = with_clean_workspace(tmp_path, monkeypatch)

    [ok] = run_pipeline(spec_file, until="data", echo=lambda _: None)
    states = {task: state for task, label, state in ok.tasks if not label}
    assert ok.state == "success" and states["publish"] == "success"
    assert states["workspace_setup"] == states["workspace_teardown"] == "success"
    assert work.is_dir() and list(work.iterdir()) == []  # the run's extract, join and measure files are gone
    published = list((tmp_path / "storage" / "forecasting" / "sales" / "curated").rglob("*.parquet"))
    assert published, "the publication is a copy outside the workspace, kept"

    spec_file = with_clean_workspace(tmp_path / "again", monkeypatch,
                                     sources=[{"name": "gone", "type": "local", "path": "data/missing/", "format": "csv"}])
    work = tmp_path / "again" / "work" / "weekly_retrain" / "weekly_retrain__data"
    [failed] = run_pipeline(spec_file, until="data", echo=lambda _: None)
    states = {(task, label): state for task, label, state in failed.tasks}
    assert failed.state == "failed"
    assert states[("extract", "gone")] == "failed" and states[("extract", "sales")] == "success"
    assert states[("workspace_teardown", "")] == "success"  # ran although the run failed
    assert list(work.iterdir()) == []  # the source that did extract left nothing behind


def make_workspace(root: Path, run_key: str, age_s: float, marker: bool = True) -> Path:
    folder = root / "p" / "p__data" / run_key
    (folder / "extract-0").mkdir(parents=True)
    (folder / "extract-0" / "a.parquet").write_bytes(b"x")
    if marker:
        (folder / workspace.MARKER).write_text("{}")
        then = time.time() - age_s
        os.utime(folder / workspace.MARKER, (then, then))
    return folder


def test_the_setup_removes_only_stale_workspaces_of_other_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_WORK_URI", tmp_path.as_uri())
    stale = make_workspace(tmp_path, "killed_run", age_s=workspace.STALE_AFTER_S + 60)
    live = make_workspace(tmp_path, "running", age_s=3600)
    foreign = make_workspace(tmp_path, "unmarked", age_s=0, marker=False)
    own = make_workspace(tmp_path, "this_run", age_s=workspace.STALE_AFTER_S + 60)  # a re-run setup of this run

    ctx = RunContext(dag_id="p__data", task_id="workspace_setup", run_id="this_run")
    result = workspace.prepare(ctx, pipeline="p")
    assert result["removed"] == ["killed_run"] and not stale.exists()
    assert live.exists() and foreign.exists()
    assert (own / "extract-0" / "a.parquet").exists()  # a cleared task still finds its upstream's output

    assert workspace.clean(ctx, pipeline="p") == {"workspace": own.as_uri(), "removed": True}
    assert not own.exists() and live.exists()
    assert workspace.clean(ctx, pipeline="p")["removed"] is False  # a second teardown is a no-op


def test_the_workspace_is_cleaned_in_s3_too(tmp_path, monkeypatch, s3_server):  # noqa: F811
    s3_server.client().create_bucket(Bucket="work")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())  # intermediate files use aws_default
    monkeypatch.setenv("PIPESPEC_WORK_URI", "s3://work/pipespec")
    ctx = RunContext(dag_id="p__data", task_id="workspace_setup", run_id="manual__2026-12-05T10:00:00+00:00")
    s3_server.put("work", f"pipespec/p/p__data/{ctx.run_key}/join/joined.parquet", b"x")
    s3_server.put("work", "pipespec/p/p__data/other_run/join/joined.parquet", b"y")
    workspace.prepare(ctx, pipeline="p")
    assert workspace.clean(ctx, pipeline="p")["removed"] is True
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket="work").get("Contents", [])]
    assert not [key for key in keys if ctx.run_key in key]
    assert "pipespec/p/p__data/other_run/join/joined.parquet" in keys


from tests.support.s3_server import s3_server  # noqa: E402,F401 - fixture
