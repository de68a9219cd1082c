"""`data.plan_sources`: a `per_folder` source becomes one source per folder found when the run
starts (seed 002's knowledge-base ingest), on local disk and in S3 (moto's server). Folder names
are data someone else wrote: they never become a path outside the source, a template, or a name
two instances share."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.extract import extract
from pipespec.tasklib.data.plan import plan_sources
from tests.support.s3_server import s3_server  # noqa: F401 - fixture

pytestmark = pytest.mark.airflow  # the S3 case reads through an Airflow connection

CTX = RunContext(dag_id="kb__data", task_id="plan_sources", run_id="manual__1")
KB = {"name": "kb", "type": "local", "path": "docs/", "format": "documents", "per_folder": True}


@pytest.fixture(autouse=True)
def spec_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("PIPESPEC_STORAGE_ROOT", raising=False)
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path / "shared"))
    (tmp_path / "spec").mkdir()
    return tmp_path / "spec"


def doc(root: Path, relative: str, text: str = "a document long enough to keep") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def plan(spec_dir: Path, *sources: dict) -> list[dict]:
    return plan_sources(CTX, spec_dir=str(spec_dir), sources=list(sources))


def test_each_folder_is_a_source_and_top_level_files_are_one_more(spec_dir):
    for relative in ("docs/faq/returns.txt", "docs/faq/deep/more.md", "docs/products/pack.md", "docs/README.md",
                     "docs/.git/config.md", "docs/_drafts/wip.md", "docs/notes.csv"):
        doc(spec_dir, relative)
    other = {"name": "tickets", "type": "local", "path": "t.csv", "format": "csv"}

    planned = plan(spec_dir, other, KB)

    assert planned == [
        other,  # untouched, in the spec's order
        {**KB, "name": "kb__faq", "path": "docs/faq/", "per_folder": False},
        {**KB, "name": "kb__products", "path": "docs/products/", "per_folder": False},
        {**KB, "per_folder": False, "recursive": False},  # README.md: nothing under the source is left out
    ]
    # Each planned source extracts exactly its part: subfolders too, the top level alone.
    read = {s["name"]: sorted(storage.read_table(extract(CTX, pipeline="kb", spec_dir=str(spec_dir),
                                                         publishes="s3://kb/curated/", source=s))["path"].to_pylist())
            for s in planned[1:]}
    assert read == {"kb__faq": ["docs/faq/deep/more.md", "docs/faq/returns.txt"],  # named as the spec names them
                    "kb__products": ["docs/products/pack.md"], "kb": ["docs/README.md"]}


def test_hostile_folder_names_stay_data(spec_dir):
    names = ["{{ conn.aws_default.password }}", "Products", "brand-voice", "ünïcode", "a b", "a_b", "x" * 200]
    for name in names:
        doc(spec_dir / "docs", f"{name}/d.md")

    planned = plan(spec_dir, KB)

    by_path = {s["path"]: s["name"] for s in planned}
    assert set(by_path) == {f"docs/{name}/" for name in names}  # the folder itself, never a template or a rename
    assert by_path["docs/brand-voice/"] == "kb__brand-voice" and by_path["docs/a_b/"] == "kb__a_b"
    # A name that had to change carries a hash of the folder's own name: "a b" and "a_b" stay apart.
    assert re.fullmatch(r"kb__a_b_[0-9a-f]{8}", by_path["docs/a b/"])
    assert re.fullmatch(r"kb__conn_aws_default_password_[0-9a-f]{8}", by_path["docs/{{ conn.aws_default.password }}/"])
    assert all(re.fullmatch(r"[a-z0-9_-]{1,63}", name) for name in by_path.values())


@settings(max_examples=60, deadline=None)
@given(st.sets(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1,
                       max_size=80).filter(lambda n: n not in (".", "..") and n[0] not in "._"),
               min_size=1, max_size=6))
def test_instance_names_are_distinct_safe_and_the_same_whatever_else_is_there(names):
    from pipespec.tasklib.data.plan import _instance_name

    alone = {name: _instance_name("kb", name, set()) for name in names}
    together: set[str] = set()
    assert [_instance_name("kb", name, together) for name in sorted(names)] == [alone[n] for n in sorted(names)]
    assert len(together) == len(names)
    assert all(re.fullmatch(r"kb__[a-z0-9_-]{1,59}(_[0-9a-f]{8})?", name) and len(name) <= 63 for name in together)


def test_a_symlinked_folder_out_of_the_allowed_roots_fails_the_run_or_is_left_out(spec_dir, tmp_path, caplog):
    doc(spec_dir, "docs/faq/returns.txt")
    doc(tmp_path, "elsewhere/secrets/key.md", "not yours")
    os.symlink(tmp_path / "elsewhere" / "secrets", spec_dir / "docs" / "secrets")

    with pytest.raises(PermissionError, match=r"the folder 'secrets' cannot be read: it leads outside the folders"):
        plan(spec_dir, KB)
    skipped = plan(spec_dir, {**KB, "on_bad_rows": "skip"})
    assert [s["name"] for s in skipped] == ["kb__faq"]
    assert "the folder 'secrets' cannot be read" in caplog.text and "left out (on_bad_rows: skip)" in caplog.text


def test_a_folder_name_cannot_take_another_folders_name(spec_dir):
    doc(spec_dir / "docs", "Brand Voice/a.md")
    first = plan(spec_dir, KB)[0]["name"]
    doc(spec_dir / "docs", f"{first.removeprefix('kb__')}/forged.md")  # a folder named like the hashed one

    names = [s["name"] for s in plan(spec_dir, KB)]
    assert len(set(names)) == 2 and first in names  # the real folder keeps its name; the forged one is hashed again


def test_a_file_or_an_empty_folder_is_a_clear_error(spec_dir):
    doc(spec_dir, "docs/one.md")
    with pytest.raises(ValueError, match="per_folder needs a folder or prefix, and docs/one.md is a file"):
        plan(spec_dir, {**KB, "path": "docs/one.md"})
    (spec_dir / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no folder and no documents file under empty/"):
        plan(spec_dir, {**KB, "path": "empty/"})


def test_s3_prefixes_are_folders_too(s3_server):  # noqa: F811
    s3_server.put("content", "kb/faq/returns.txt", b"Returns are free within 60 days.")
    s3_server.put("content", "kb/faq/2026/shipping.md", b"Orders ship the same day.")
    s3_server.put("content", "kb/Legal Notes/terms.md", b"Terms apply.")
    s3_server.put("content", "kb/_staging/x.md", b"not yet")
    source = {"name": "kb", "type": "s3", "uri": "s3://content/kb/", "format": "documents", "per_folder": True,
              "conn_id": s3_server.conn_id}

    planned = plan(Path("."), source)

    assert [(s["name"][:len("kb__legal_notes")], s["uri"]) for s in planned] == [
        ("kb__legal_notes", "s3://content/kb/Legal Notes/"), ("kb__faq", "s3://content/kb/faq/")]
    faq = extract(CTX, pipeline="kb", spec_dir=".", publishes="s3://content/curated/", source=planned[1])
    assert sorted(storage.read_table(faq)["text"].to_pylist()) == ["Orders ship the same day.",
                                                                   "Returns are free within 60 days."]


def test_more_folders_than_airflow_maps_is_said_by_the_plan(spec_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    for name in "abcd":
        doc(spec_dir / "docs", f"{name}/d.md")
    with pytest.raises(ValueError, match=r"4 sources to extract, more than the 3 instances Airflow maps"):
        plan(spec_dir, KB)


@pytest.mark.parametrize("folder", ["#", "faq#evil", "x?y=1", "%2e%2e"])
def test_s3_folder_names_that_would_name_another_prefix_are_refused(s3_server, folder):  # noqa: F811
    s3_server.put("content", "kb/faq/returns.txt", b"Returns are free within 60 days.")
    s3_server.put("content", f"kb/{folder}/x.md", b"planted")
    source = {"name": "kb", "type": "s3", "uri": "s3://content/kb/", "format": "documents", "per_folder": True,
              "conn_id": s3_server.conn_id}

    with pytest.raises(PermissionError, match=f"the folder {re.escape(repr(folder))} cannot be read"):
        plan(Path("."), source)
    assert [s["uri"] for s in plan(Path("."), {**source, "on_bad_rows": "skip"})] == ["s3://content/kb/faq/"]
