"""`pipespec init [DIR]`: a team repository of specs that works at once, and `pipespec new` from a
shipped template inside it (pipespec.local.scaffold)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipespec import __version__
from pipespec.cli import main
from pipespec.compiler.compile import compile_checked
from pipespec.schemas.check import check_file
from pipespec.schemas.jsonschema import render_schema

FILES = [
    ".pipespec/pipeline.schema.json", ".vscode/settings.json", ".vscode/extensions.json", "dags/pipespec_dags.py",
    ".pre-commit-config.yaml", ".github/workflows/pipespec.yml", ".gitignore", "README.md", "pipelines/example.yaml",
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(tmp_path, capsys, monkeypatch) -> Path:
    """A repository `pipespec init` made, as the working directory (where hooks and CI run)."""
    target = tmp_path / "team-pipelines"
    code, out, err = run(capsys, "init", str(target))
    assert code == 0, err
    assert [line.removeprefix("wrote ") for line in out.splitlines()[:-1]] == [str(target / f) for f in FILES]
    monkeypatch.chdir(target)
    return target


def test_init_writes_every_file(repo):
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == sorted(FILES)


def test_the_first_spec_passes_check_as_ci_and_the_hook_run_it(repo, capsys):
    assert run(capsys, "check")[:2] == (0, "1 file(s) checked: all good\n")  # the default, pipelines/
    code, out, _ = run(capsys, "check", "pipelines/", "--format", "github")  # the CI step
    assert code == 0 and "::error" not in out
    spec = (repo / "pipelines" / "example.yaml").read_text()
    assert "extends: pipespec:tabular@1\n" in spec  # made from a pinned, shipped template
    assert spec.startswith("# yaml-language-server: $schema=../.pipespec/pipeline.schema.json\n")


def test_the_pre_commit_hook_runs_pipespec_check_on_changed_specs(repo, capsys):
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    [hook] = config["repos"][0]["hooks"]
    assert config["repos"][0]["repo"] == "local" and hook["language"] == "system"
    pipespec_hook = yaml.safe_load((Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text())[0]
    assert {k: hook[k] for k in ("id", "entry", "files", "require_serial")} == {
        k: pipespec_hook[k] for k in ("id", "entry", "files", "require_serial")}
    assert re.search(hook["files"], "pipelines/example.yaml") and not re.search(hook["files"], "dags/pipespec_dags.py")
    # What pre-commit runs for one changed file: the entry, then the file name.
    assert main([*hook["entry"].split()[1:], "pipelines/example.yaml"]) == 0


def test_the_workflow_checks_and_comments_graph_and_diff(repo):
    text = (repo / ".github" / "workflows" / "pipespec.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["check"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "pipespec check pipelines/ --format github" in runs
    assert 'pipespec diff "origin/$BASE"' in runs and 'pipespec graph "$spec"' in runs and "gh pr comment" in runs
    assert "pipespec schema --check --output .pipespec/pipeline.schema.json" in runs
    assert f'pip install "pipespec=={__version__}"' in runs
    assert workflow["permissions"]["pull-requests"] == "write"
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as true


def test_the_editor_settings_bind_the_schema_init_wrote(repo, capsys):
    schema = repo / ".pipespec" / "pipeline.schema.json"
    assert schema.read_text() == render_schema()
    assert main(["schema", "--check", "--output", str(schema)]) == 0  # what CI runs
    bindings = json.loads((repo / ".vscode" / "settings.json").read_text())["yaml.schemas"]
    [(path, globs)] = bindings.items()
    assert (repo / path).resolve() == schema.resolve()
    # `**/` matches no folder too, in VS Code's globs as in pathlib's.
    assert {p for glob in globs for p in repo.glob(glob)} == {repo / "pipelines" / "example.yaml"}


def test_the_dags_file_loads_the_first_pipeline_in_a_dagbag(repo, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("PIPESPEC_PIPELINES", raising=False)
    monkeypatch.delenv("PIPESPEC_CACHE_DIR", raising=False)
    dags_file = repo / "dags" / "pipespec_dags.py"
    assert len(dags_file.read_text().strip().splitlines()) <= 8
    checked = check_file(repo / "pipelines" / "example.yaml")
    expected = {dag.dag_id for dag in compile_checked(checked).dags}
    bag = DagBag(dag_folder=str(repo / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dags) == expected and len(expected) >= 2
    assert any((repo / ".pipespec-cache").glob("*.json"))  # the loader keeps its cache in the repository


def test_init_twice_keeps_files_and_force_overwrites_them(repo, capsys):
    (repo / "README.md").write_text("ours\n")
    (repo / "pipelines" / "example.yaml").write_text("pipeline: ours\n")
    code, out, _ = run(capsys, "init", str(repo))
    assert code == 0
    kept = [line.split()[1] for line in out.splitlines() if line.startswith("kept ")]
    assert kept == [str(repo / f) for f in FILES] and "wrote" not in out
    assert (repo / "README.md").read_text() == "ours\n"
    assert (repo / "pipelines" / "example.yaml").read_text() == "pipeline: ours\n"
    code, out, _ = run(capsys, "init", "--force", str(repo))
    assert code == 0 and "kept" not in out
    assert (repo / "README.md").read_text() != "ours\n"
    assert "extends: pipespec:tabular@1" in (repo / "pipelines" / "example.yaml").read_text()


def test_force_replaces_a_symlink_and_never_writes_through_it(tmp_path, capsys):
    outside = tmp_path / "outside.md"
    outside.write_text("not yours\n")
    target = tmp_path / "repo"
    target.mkdir()
    (target / "README.md").symlink_to(outside)
    assert run(capsys, "init", str(target))[0] == 0
    assert (target / "README.md").is_symlink()  # kept without --force
    assert run(capsys, "init", "--force", str(target))[0] == 0
    assert outside.read_text() == "not yours\n" and not (target / "README.md").is_symlink()


def test_init_keeps_a_users_file_among_new_ones(tmp_path, capsys):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "pipespec_dags.py").write_text("# ours\n")
    code, out, _ = run(capsys, "init", str(tmp_path))
    assert code == 0
    assert f"kept {tmp_path / 'dags' / 'pipespec_dags.py'} (it exists; --force overwrites it)" in out
    assert (tmp_path / "dags" / "pipespec_dags.py").read_text() == "# ours\n"
    assert (tmp_path / "README.md").is_file()


@pytest.mark.parametrize(("template", "pinned"), [("pipespec:tabular@1", "pipespec:tabular@1"),
                                                  ("pipespec:text_classifier", "pipespec:text_classifier@1")])
def test_new_from_a_shipped_template_in_an_initialised_repo(repo, capsys, template, pinned):
    code, out, err = run(capsys, "new", "churn_eu", "--from", template)
    assert code == 0, err
    created = repo / "pipelines" / "churn_eu.yaml"
    text = created.read_text()
    assert f"extends: {pinned}\n" in text  # a bare name is pinned to the latest version when written
    assert text.startswith("# yaml-language-server: $schema=../.pipespec/pipeline.schema.json\n")
    assert run(capsys, "check")[:2] == (0, "2 file(s) checked: all good\n")


def test_new_from_an_unknown_shipped_template_suggests_one(repo, capsys):
    code, _, err = run(capsys, "new", "churn_eu", "--from", "pipespec:tabularr@1")
    assert code == 2
    assert "no shipped template `pipespec:tabularr`" in err and "did you mean `pipespec:tabular`?" in err
    assert not (repo / "pipelines" / "churn_eu.yaml").exists()
