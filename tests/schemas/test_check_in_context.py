"""`pipespec check FILE...` in repository context: the repository rules see every spec of the specs
folder around the files, and only the files given (and the templates they use) are reported on.
The pre-commit hook, run as pre-commit runs it, on one changed file."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipespec.cli import main
from pipespec.schemas.check import specs_root
from tests.support.paths import EXAMPLES, ROOT
from tests.support.files import write

SOURCE = "    - {name: raw, type: local, path: data/raw/, format: csv}\n"
CONSUMER = "feedback_llm_finetune.yaml"  # trains on s3://feedback/curated/, which user_feedback.yaml publishes


def spec(name: str, publishes: str, schedule: str = "") -> str:
    """A small valid spec; `schedule` is a data schedule such as `{assets: s3://x/}`."""
    when = f"  schedule: {schedule}\n" if schedule else ""
    return f"pipeline: {name}\ndata:\n{when}  sources:\n{SOURCE}  publishes: {publishes}\n"


def check_json(capsys, monkeypatch, cwd: Path, *argv: str) -> tuple[int, list[dict]]:
    monkeypatch.chdir(cwd)
    code = main(["check", "--format", "json", *argv])
    return code, json.loads(capsys.readouterr().out)["diagnostics"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the example specs (and their templates) under pipelines/."""
    shutil.copytree(EXAMPLES, tmp_path / "pipelines", ignore=shutil.ignore_patterns("data"))
    (tmp_path / ".git").mkdir()  # what marks the repository root for the specs-folder look-up
    return tmp_path


# --- the specs folder around a file ------------------------------------------------------------------

def test_specs_root_is_the_outermost_folder_with_templates_inside_the_repository(tmp_path):
    write(tmp_path, {"templates/base.yaml": "", "repo/pipelines/templates/base.yaml": "",
                     "repo/pipelines/team/templates/base.yaml": "", "repo/pipelines/team/sub/x.yaml": ""})
    (tmp_path / "repo" / ".git").mkdir()
    # tmp_path/templates lies above the repository root: not this repository's specs folder.
    assert specs_root(tmp_path / "repo/pipelines/team/sub/x.yaml") == (tmp_path / "repo/pipelines").resolve()


def test_specs_root_without_templates_is_the_outermost_pipelines_folder(tmp_path):
    write(tmp_path, {"pipelines/team/x.yaml": ""})
    (tmp_path / ".git").mkdir()
    assert specs_root(tmp_path / "pipelines/team/x.yaml") == (tmp_path / "pipelines").resolve()


def test_specs_root_falls_back_to_the_files_folder(tmp_path):
    write(tmp_path, {"specs/team/x.yaml": ""})
    (tmp_path / ".git").mkdir()
    assert specs_root(tmp_path / "specs/team/x.yaml") == (tmp_path / "specs/team").resolve()


def test_outside_a_repository_the_look_up_stops_above_the_nearest_specs_folder(tmp_path):
    """Nothing marks where the project ends: a stray `templates/` above a project's own specs folder
    must not make a whole temporary directory the specs folder (check would read every YAML in it)."""
    write(tmp_path, {"templates/base.yaml": "", "work/other/pipelines/templates/base.yaml": "",
                     "work/other/pipelines/team/x.yaml": "", "work/loose/x.yaml": ""})
    assert specs_root(tmp_path / "work/other/pipelines/team/x.yaml") == (tmp_path / "work/other/pipelines").resolve()
    assert specs_root(tmp_path / "work/loose/x.yaml") == tmp_path.resolve()  # where its `extends` looks too


# --- the repository rules see the other specs -------------------------------------------------------

def test_a_consumer_checked_alone_sees_the_pipeline_that_produces_its_asset(repo, capsys, monkeypatch):
    """The issue's repro: from the repository root, one consumer spec exited 1 with "no pipeline
    produces the Asset `s3://feedback/curated/`"."""
    code, found = check_json(capsys, monkeypatch, repo, f"pipelines/{CONSUMER}")
    assert (code, found) == (0, [])


def test_a_consumed_asset_nobody_produces_is_still_reported_on_the_file(repo, capsys, monkeypatch):
    consumer = repo / "pipelines" / CONSUMER
    consumer.write_text(consumer.read_text().replace("s3://feedback/curated/", "s3://feedback/curatd/"))
    code, found = check_json(capsys, monkeypatch, repo, f"pipelines/{CONSUMER}")
    assert code == 1
    assert [(d["file"], d["message"]) for d in found] == [
        (f"pipelines/{CONSUMER}", "no pipeline produces the Asset `s3://feedback/curatd/`")]


def test_errors_in_the_other_specs_are_not_reported(repo, capsys, monkeypatch):
    write(repo / "pipelines", {
        "broken.yaml": "pipeline: broken\nbogus: 1\n",                       # an error of its own
        "orphan.yaml": spec("orphan", "s3://o/", "{assets: s3://nowhere/}"),  # a repository-rule error
        "twin_a.yaml": spec("twin", "s3://twin/a/"), "twin_b.yaml": spec("twin", "s3://twin/b/"),
    })
    code, found = check_json(capsys, monkeypatch, repo, f"pipelines/{CONSUMER}")
    assert (code, found) == (0, [])
    code, found = check_json(capsys, monkeypatch, repo, "pipelines")  # the folder: every error
    assert code == 1
    assert {Path(d["file"]).name for d in found} == {"broken.yaml", "orphan.yaml", "twin_b.yaml"}


def test_a_name_taken_by_another_spec_is_reported_on_the_file_whichever_sorts_first(tmp_path, capsys, monkeypatch):
    write(tmp_path, {"a_new.yaml": spec("taken", "s3://new/"), "b_old.yaml": spec("taken", "s3://old/")})
    code, found = check_json(capsys, monkeypatch, tmp_path, "a_new.yaml")
    assert code == 1
    [d] = found
    assert (d["file"], d["path"]) == ("a_new.yaml", "pipeline")
    assert d["message"] == "pipeline name `taken` is already used by b_old.yaml"


def test_an_asset_another_spec_produces_is_reported_on_the_file_only(tmp_path, capsys, monkeypatch):
    write(tmp_path, {"mine.yaml": spec("mine", "s3://shared/x/"), "theirs.yaml": spec("theirs", "s3://shared/x/")})
    code, found = check_json(capsys, monkeypatch, tmp_path, "mine.yaml")
    assert code == 1
    [d] = found
    assert d["file"] == "mine.yaml"
    assert "is also produced by pipeline `theirs` (theirs.yaml" in d["message"]


def test_a_cycle_through_other_specs_is_reported_on_the_file(tmp_path, capsys, monkeypatch):
    write(tmp_path, {"a.yaml": spec("a", "s3://a/", "{assets: s3://c/}"),
                     "b.yaml": spec("b", "s3://b/", "{assets: s3://a/}"),
                     "c.yaml": spec("c", "s3://c/", "{assets: s3://b/}")})
    for name in ("a", "b", "c"):
        code, found = check_json(capsys, monkeypatch, tmp_path, f"{name}.yaml")
        assert code == 1
        [d] = found
        assert d["file"] == f"{name}.yaml" and d["path"] == "data.schedule"
        assert d["message"].startswith(f"pipelines trigger each other in a cycle: {name} → ")


def test_a_template_checked_alone_reports_only_itself(repo, capsys, monkeypatch):
    write(repo / "pipelines", {"broken.yaml": "pipeline: broken\nbogus: 1\n"})
    code, found = check_json(capsys, monkeypatch, repo, "pipelines/templates/base.yaml")
    assert (code, found) == (0, [])


def test_the_other_specs_are_not_checked_in_full(tmp_path, capsys, monkeypatch):
    """Checking one changed file in a large repository reads the others' names and Assets only."""
    import pipespec.schemas.check as check_module

    write(tmp_path, {f"p{i:02}.yaml": spec(f"p{i:02}", f"s3://p{i:02}/") for i in range(20)})
    checked: list[str] = []
    real = check_module.check_file
    monkeypatch.setattr(check_module, "check_file", lambda path, *a, **k: checked.append(path.name) or real(path, *a, **k))
    write(tmp_path, {"p00.yaml": spec("p00", "s3://p01/")})  # now clashes with p01
    code, found = check_json(capsys, monkeypatch, tmp_path, "p00.yaml")
    assert checked == ["p00.yaml"]
    assert code == 1 and [d["file"] for d in found] == ["p00.yaml"]


def test_a_policy_file_inside_the_specs_folder_is_refused_for_a_file_checked_alone(repo, capsys, monkeypatch):
    policy = repo / "pipelines" / "policy.yaml"
    policy.write_text("teams: {}\n")
    monkeypatch.chdir(repo)
    code = main(["check", "--policy", str(policy), f"pipelines/{CONSUMER}"])
    assert code == 2
    assert "inside the spec directory" in capsys.readouterr().err


# --- the pre-commit hook ----------------------------------------------------------------------------

def hook() -> dict:
    [definition] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return definition


def run_hook(repo: Path, *changed: str) -> subprocess.CompletedProcess:
    """The hook's exact command as pre-commit runs it: `entry` + `args` + the changed files that match
    `files`, from the repository root, with pipespec's environment first on PATH."""
    definition = hook()
    files = [f for f in changed if re.search(definition["files"], f)]
    assert files == list(changed), "the hook would not even be given these files"
    command = shlex.split(definition["entry"]) + list(definition.get("args", [])) + files
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_the_hook_passes_a_correct_change_to_one_consumer_spec(repo):
    consumer = repo / "pipelines" / CONSUMER
    consumer.write_text(consumer.read_text().replace("epochs: 3", "epochs: 4"))
    result = run_hook(repo, f"pipelines/{CONSUMER}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 file(s) checked: all good" in result.stdout


def test_the_hook_reports_a_broken_consumed_asset_on_the_changed_file_only(repo):
    consumer = repo / "pipelines" / CONSUMER
    consumer.write_text(consumer.read_text().replace("s3://feedback/curated/", "s3://feedback/nowhere/"))
    unchanged = repo / "pipelines" / "churn.yaml"
    unchanged.write_text(unchanged.read_text() + "bogus_key: 1\n")  # an error in a spec nobody changed
    result = run_hook(repo, f"pipelines/{CONSUMER}")
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(n for n, text in enumerate(consumer.read_text().splitlines(), 1) if "s3://feedback/nowhere/" in text)
    assert f"pipelines/{CONSUMER}:{line}:" in result.stdout
    assert "no pipeline produces the Asset `s3://feedback/nowhere/`" in result.stdout
    assert "churn.yaml" not in result.stdout and "bogus_key" not in result.stdout
