"""Issue 10, items 2 and 12: data access stays inside the data roots, bad-row errors quote no row,
and one pipeline cannot write into another pipeline's Asset.

Every test is a repro of a hostile or careless spec: it failed before the guard and passes after."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from pipespec.schemas.check import check_file
from pipespec.schemas.data_access import check_data_uri, check_local_path
from pipespec.schemas.repo import check_repo
from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.extract import extract
from pipespec.tasklib.data.publish import publish
from pipespec.tasklib.published import latest, mark_latest, run_prefix, write_manifest

SECRET = "hunter2-fernet-key"
RUN = "scheduled__2026-01-02T00:00:00+00:00"


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A spec folder with its data, a worker's private file beside it, and no configured data root."""
    for name in ("PIPESPEC_DATA_ROOT", "PIPESPEC_STORAGE_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    spec = tmp_path / "pipelines"
    (spec / "data").mkdir(parents=True)
    (spec / "data" / "ok.csv").write_text("id,text\n1,fine\n")
    private = tmp_path / "airflow" / "airflow.cfg"
    private.parent.mkdir()
    private.write_text(f"id,fernet_key\n1,{SECRET}\n")
    return spec, private


def extract_local(spec: Path, path: str, fmt: str = "csv", pipeline: str = "p", **extra) -> dict:
    ctx = RunContext(dag_id=f"{pipeline}__data", task_id="extract", run_id=RUN, map_index=0)
    return extract(ctx, pipeline=pipeline, spec_dir=str(spec), publishes="s3://unused/curated/",
                   source={"name": "s", "type": "local", "path": path, "format": fmt, **extra})


def assert_refused(call, *secrets: str) -> str:
    with pytest.raises(PermissionError) as caught:
        call()
    message = str(caught.value)
    for secret in (SECRET, *secrets):
        assert secret not in message
    return message


# --- check time -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/opt/airflow/airflow.cfg", "../../airflow.cfg", "data/../../x.csv", "",
                                  "data/\x00.csv", "~/x.csv", "data\\..\\..\\x.csv"])
def test_local_path_must_stay_in_the_spec_folder(path):
    with pytest.raises(ValueError, match="local source path"):
        check_local_path(path)


@pytest.mark.parametrize("path", ["data/raw/", "data/a.csv", "./data", "data/x..y.csv"])
def test_ordinary_relative_paths_pass(path):
    assert check_local_path(path) == path


@pytest.mark.parametrize("uri", ["file:///etc/", "file:///opt/airflow/airflow.cfg", "s3://bucket/../../etc",
                                 "s3://bucket/a/%2e%2e/b", "s3:///x", "http://example.com/x", "s3://b/x\ny"])
def test_data_uris_are_s3_without_traversal(uri):
    with pytest.raises(ValueError):
        check_data_uri(uri)


def test_check_points_at_the_path_with_a_hint(tmp_path):
    spec = tmp_path / "leak.yaml"
    spec.write_text(textwrap.dedent("""\
        pipeline: leak
        data:
          sources:
            - {name: cfg, type: local, path: /opt/airflow/airflow.cfg, format: csv}
            - {name: up, type: local, path: ../../secrets/, format: jsonl}
            - {name: s3, type: s3, uri: "s3://bucket/../../etc", format: csv}
          drift: {reference: "file:///etc/", columns: [a]}
          publishes: file:///opt/airflow/
        """))
    found = {(d.line, d.col): d for d in check_file(spec).diagnostics}
    assert set(found) == {(4, 38), (5, 37), (6, 33), (7, 22), (8, 14)}, found
    assert "absolute" in found[(4, 38)].message and "relative to the spec" in found[(4, 38)].hint
    assert "`..`" in found[(5, 37)].message
    assert "`..`" in found[(6, 33)].message
    assert "s3://" in found[(8, 14)].message


# --- run time: local sources ------------------------------------------------------

def test_relative_path_in_the_spec_folder_is_read(roots):
    spec, _ = roots
    assert extract_local(spec, "data/ok.csv")["rows"] == 1


def test_absolute_path_outside_the_roots_is_refused(roots):
    spec, private = roots
    assert "is absolute" in assert_refused(lambda: extract_local(spec, str(private)))


def test_dotdot_path_is_refused(roots):
    spec, _ = roots
    assert_refused(lambda: extract_local(spec, "../airflow/airflow.cfg"))


def test_symlink_in_the_spec_tree_pointing_out_is_refused(roots):
    spec, private = roots
    (spec / "data" / "innocent.csv").symlink_to(private)
    message = assert_refused(lambda: extract_local(spec, "data/innocent.csv"))
    assert message.startswith("data/innocent.csv: outside") and "PIPESPEC_DATA_ROOT" in message
    assert str(private) not in message  # named as the spec names it, not by its target
    (spec / "linked").symlink_to(private.parent, target_is_directory=True)
    assert_refused(lambda: extract_local(spec, "linked"))


def test_symlink_inside_a_listed_folder_is_refused(roots):
    spec, private = roots
    (spec / "data" / "zz.csv").symlink_to(private)
    assert_refused(lambda: extract_local(spec, "data"))


def test_configured_data_root_is_allowed_also_through_a_symlink(roots, tmp_path, monkeypatch):
    spec, _ = roots
    shared = tmp_path / "shared-data"
    shared.mkdir()
    (shared / "x.csv").write_text("id\n1\n2\n")
    (spec / "shared").symlink_to(shared, target_is_directory=True)
    assert_refused(lambda: extract_local(spec, "shared"))
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(shared))
    assert extract_local(spec, "shared")["rows"] == 2


# --- run time: URIs ---------------------------------------------------------------

def test_file_uri_outside_the_roots_is_refused(roots):
    _, private = roots
    assert_refused(lambda: storage.read_text(private.as_uri()))
    assert_refused(lambda: storage.read_text("file:///etc/passwd"), "root:")
    assert_refused(lambda: storage.read_text("file://localhost/etc/passwd"), "root:")


def test_s3_key_cannot_climb_out_of_the_storage_root(roots, tmp_path, monkeypatch):
    _, private = roots
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    assert_refused(lambda: storage.read_text("s3://bucket/../../airflow/airflow.cfg"))
    assert_refused(lambda: storage.read_text("s3://../airflow/airflow.cfg"))
    storage.write_text("s3://bucket/ok.txt", "fine")
    assert storage.read_text("s3://bucket/ok.txt") == "fine"


def test_forged_latest_pointer_cannot_lead_outside_the_asset(roots, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    outside = run_prefix("s3://other/asset/", "r1")
    write_manifest(outside, {"data": {"uri": f"{outside}/data.parquet", "rows": 0, "schema": {}, "sha256": ""}})
    storage.write_text("s3://bucket/curated/_LATEST", outside)
    with pytest.raises(ValueError, match="_LATEST points outside"):
        latest("s3://bucket/curated/")


# --- bad rows quote no row ----------------------------------------------------------

@pytest.mark.parametrize("fmt,content", [
    ("jsonl", f'{{"id": 1, "text": "ok"}}\n{{"id": 2, "password": "{SECRET}" \n'),
    ("jsonl", f'{{"id": 1}}\n{{"id": "{SECRET}"}}\n'),
    ("csv", f"id,text\n1,ok\n2,{SECRET},extra\n"),
])
def test_bad_row_errors_name_file_and_line_but_never_the_row(roots, fmt, content):
    spec, _ = roots
    (spec / "data" / f"bad.{fmt}").write_text(content)
    with pytest.raises(ValueError) as caught:
        extract_local(spec, f"data/bad.{fmt}", fmt)
    message = str(caught.value)
    assert SECRET not in message and "password" not in message
    assert message.startswith(f"data/bad.{fmt}:"), message  # relative to the spec folder, not /home/...
    assert str(spec) not in message


def test_csv_value_that_breaks_the_inferred_type_is_not_quoted():
    from pipespec.tasklib.data.readers import BadRows, read_csv

    content = ("id,n\n" + "1,1\n" * 3 + f"2,it's {SECRET}\n").encode()
    with pytest.raises(ValueError, match="conversion error") as caught:
        list(read_csv(pa.BufferReader(content), "data/x.csv", BadRows(), block_bytes=16))
    assert SECRET not in str(caught.value) and str(caught.value).startswith("data/x.csv: ")


def test_skipped_bad_rows_are_logged_without_their_text(roots, caplog):
    spec, _ = roots
    (spec / "data" / "bad.csv").write_text(f"id,text\n1,ok\n2,{SECRET},extra\n")
    result = extract_local(spec, "data/bad.csv", on_bad_rows="skip")
    assert result["bad_rows"] == 1 and "data/bad.csv:3" in caplog.text and SECRET not in caplog.text


# --- one producer per Asset -------------------------------------------------------------

def write_spec(folder: Path, name: str, publishes: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        pipeline: {name}
        data:
          sources:
            - {{name: raw, type: local, path: data/raw/, format: csv}}
          publishes: {publishes}
        """))
    return path


def test_second_producer_of_an_asset_is_an_error_naming_the_first(tmp_path):
    first = write_spec(tmp_path, "team_x", "s3://shared/curated/")
    second = write_spec(tmp_path, "team_y", "s3://shared/curated/")
    other = write_spec(tmp_path, "team_z", "s3://shared/other/")
    found = check_repo([check_file(p) for p in (first, second, other)])
    assert sorted((Path(d.file).name, d.line, d.col) for d in found) == [("team_x.yaml", 5, 14), ("team_y.yaml", 5, 14)]
    by_file = {Path(d.file).name: d for d in found}
    assert "pipeline `team_x` (" in by_file["team_y.yaml"].message and "team_x.yaml" in by_file["team_y.yaml"].message
    assert "pipeline `team_y` (" in by_file["team_x.yaml"].message and found[0].hint


def test_an_asset_inside_another_pipelines_asset_is_an_error_on_both(tmp_path):
    """The security review's repro: publishing into `<their asset>/runs/<me>` put files a recursive
    reader of their Asset picks up."""
    outer = write_spec(tmp_path, "churn", "s3://growth/churn/training/")
    inner = write_spec(tmp_path, "aab", "s3://growth/churn/training/runs/churn")
    beside = write_spec(tmp_path, "beside", "s3://growth/churn/training-old/")  # a sibling, not inside
    found = check_repo([check_file(p) for p in (outer, inner, beside)])
    messages = {Path(d.file).name: d.message for d in found}
    assert set(messages) == {"churn.yaml", "aab.yaml"}
    assert "lies inside an Asset of pipeline `churn`" in messages["aab.yaml"]
    assert "contains an Asset of pipeline `aab`" in messages["churn.yaml"]


def test_check_of_a_single_file_still_passes(tmp_path):
    from pipespec.cli import main

    (tmp_path / "data" / "raw").mkdir(parents=True)
    assert main(["check", str(write_spec(tmp_path, "team_x", "s3://shared/curated/"))]) == 0


def team_run(pipeline: str, rows: int, work: Path) -> dict:
    """team's data DAG as the steps see it, writing its join output and publishing it."""
    ctx = RunContext(dag_id=f"{pipeline}__data", task_id="publish", run_id=RUN)
    ref = storage.write_table(pa.table({"id": list(range(rows))}), storage.work_uri(ctx, pipeline, "joined.parquet"))
    dataset = {**ref.to_dict(), "sources": {"raw": {"rows": rows, "watermark": f"2026-01-0{rows}T00:00:00+00:00"}}}
    return publish(ctx, pipeline=pipeline, publishes="s3://shared/curated/", spec_hash="h",
                   dataset=dataset, measurement={"rows": rows})


def test_team_y_cannot_overwrite_team_x_asset_run_or_watermarks(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    out = team_run("team_x", 3, tmp_path)
    assert "/runs/team_x/" in out["uri"]  # run folders are keyed by pipeline, not only by run id
    before = latest("s3://shared/curated/")
    with pytest.raises(PermissionError, match="published by pipeline `team_x`"):
        team_run("team_y", 0, tmp_path)
    after = latest("s3://shared/curated/")
    assert after.manifest == before.manifest and after.data.rows == 3
    assert storage.read_table(after.data).num_rows == 3
    assert not list((tmp_path / "store" / "shared" / "curated" / "runs").glob("team_y*"))
    # team_y's incremental extract must not start from team_x's watermark either.
    spec = tmp_path / "spec"
    (spec / "d").mkdir(parents=True)
    (spec / "d" / "a.csv").write_text("id\n1\n")
    ctx = RunContext(dag_id="team_y__data", task_id="extract", run_id=RUN, map_index=0)
    with pytest.raises(PermissionError, match="published by pipeline `team_x`"):
        extract(ctx, pipeline="team_y", spec_dir=str(spec), publishes="s3://shared/curated/",
                source={"name": "raw", "type": "local", "path": "d", "format": "csv", "only_new": True})
    # team_x itself goes on as before.
    assert team_run("team_x", 4, tmp_path)["rows"] == 4


def test_run_keys_made_of_dots_cannot_climb_out_of_runs():
    with pytest.raises(ValueError):
        run_prefix("s3://b/a/", "..")
    assert run_prefix("s3://b/a/", "r1", "team_x") == "s3://b/a/runs/team_x/r1"
    assert run_prefix("s3://b/a/", "r1") == "s3://b/a/runs/r1"  # without a pipeline: the old layout (inference)


def test_a_local_source_cannot_reach_the_storage_or_work_areas(roots, tmp_path, monkeypatch):
    """Those hold every team's Assets and extracts: a symlink into them would skip the bucket policy."""
    spec, _ = roots
    storage_root = tmp_path / "storage"
    (storage_root / "growth" / "private").mkdir(parents=True)
    (storage_root / "growth" / "private" / "people.csv").write_text("user,ssn\nalice,123-45-6789\n")
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(storage_root))
    (spec / "data" / "link").symlink_to(storage_root / "growth" / "private", target_is_directory=True)
    message = assert_refused(lambda: extract_local(spec, "data/link/"))
    assert "123-45-6789" not in message and str(storage_root) not in message
    (spec / "data" / "work.csv").symlink_to(storage_root / "growth" / "private" / "people.csv")
    assert_refused(lambda: extract_local(spec, "data/work.csv"))
