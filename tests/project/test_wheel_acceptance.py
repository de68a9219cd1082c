"""Acceptance from the built wheel (issue 11 item 7): what a platform team does after
`pip install "pipespec[airflow]"`, in a fresh virtualenv with no checkout on `sys.path`.

Every command runs with the fresh environment's `pipespec`/`python`, from a temporary directory
outside the checkout, without PYTHONPATH or any AIRFLOW_*/PIPESPEC_* setting of the test run:
`init` a repository, `new` a spec from a shipped template, `check` it (text and GitHub), run the
repository's pre-commit hook command on one changed file, load the DAGs with Airflow's DagBag and
run the new pipeline's data DAG. The dependencies are the lock's versions (`uv export --frozen`),
so the wheel is tested against what the checkout is tested against.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

BOOT_UV = ROOT / ".venv-boot" / "bin" / "uv"
PIPELINE = "churn_eu"
TEMPLATE = "pipespec:tabular@1"


def uv() -> str:
    found = str(BOOT_UV) if BOOT_UV.is_file() else shutil.which("uv")
    if found is None:
        pytest.skip("no uv: `make` bootstraps one in .venv-boot")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipespec's wheel, built from the checkout as a release is."""
    out = tmp_path_factory.mktemp("dist")
    started = time.perf_counter()
    subprocess.run([uv(), "build", "--wheel", "--out-dir", str(out), str(ROOT)], check=True, capture_output=True,
                   text=True, timeout=300)
    print(f"uv build --wheel: {time.perf_counter() - started:.1f} s")
    [built] = out.glob("pipespec-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel):
    """PyPI has unrelated `schemas`, `tasklib` and `renderer` distributions: installing pipespec
    must add nothing beside `pipespec` (and its metadata)."""
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}
    metadata = {name for name in top if name.endswith(".dist-info")}
    assert len(metadata) == 1 and metadata.pop().startswith("pipespec-")
    assert top - {name for name in top if name.endswith(".dist-info")} == {"pipespec"}
    with zipfile.ZipFile(wheel) as archive:  # the spec language and the steps live inside it
        names = set(archive.namelist())
    assert {"pipespec/schemas/check.py", "pipespec/tasklib/steps.py", "pipespec/cli.py"} <= names


# --- the acceptance test ----------------------------------------------------------------------------

def clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user's shell with the fresh virtualenv activated: nothing of this test run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "PIPESPEC_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               AIRFLOW_HOME=str(home / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False", DO_NOT_TRACK="1")
    return env


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its `airflow` and `data` extras at the lock's versions."""
    work = tmp_path_factory.mktemp("venv")
    requirements, venv = work / "requirements.txt", work / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    started = time.perf_counter()
    subprocess.run([uv(), "export", "--frozen", "--extra", "airflow", "--extra", "data", "--no-emit-project",
                    "--no-hashes", "--output-file", str(requirements)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    subprocess.run([uv(), "venv", "--quiet", "--python", f"{sys.version_info.major}.{sys.version_info.minor}",
                    str(venv)], cwd=work, env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    "-r", str(requirements), str(wheel)], cwd=work, env=env, check=True, capture_output=True,
                   timeout=900)
    print(f"fresh virtualenv with pipespec[airflow,data]: {time.perf_counter() - started:.1f} s")
    return venv


def sh(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    """Run `argv` as the user's shell would: the program found on the fresh environment's PATH."""
    program = shutil.which(argv[0], path=env["PATH"])
    assert program is not None, f"{argv[0]} is not on the fresh environment's PATH"
    return subprocess.run([program, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("DAGBAG", json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
"""


@pytest.mark.slow
@pytest.mark.airflow
def test_a_team_repository_from_the_wheel_works_end_to_end(venv, tmp_path):
    env = clean_env(venv, tmp_path)
    python = str(venv / "bin" / "python")

    # The installed package, not the checkout: no checkout path on sys.path, no stray top-level names.
    probe = json.loads(ok(sh([python, "-c", "import json, sys, pipespec; "
                              "print(json.dumps({'file': pipespec.__file__, 'path': sys.path}))"], tmp_path, env)))
    assert Path(probe["file"]).is_relative_to(venv)
    assert not [p for p in probe["path"] if p and Path(p).resolve().is_relative_to(ROOT)]
    for name in ("schemas", "tasklib", "renderer"):
        assert sh([python, "-c", f"import {name}"], tmp_path, env).returncode != 0, name

    # init, then a spec from a shipped template.
    ok(sh(["pipespec", "init", "team"], tmp_path, env))
    repo = tmp_path / "team"
    for made in ("pipelines", "dags/pipespec_dags.py", ".pre-commit-config.yaml"):
        assert (repo / made).exists(), made
    ok(sh(["pipespec", "new", PIPELINE, "--from", TEMPLATE], repo, env))
    spec = repo / "pipelines" / f"{PIPELINE}.yaml"
    assert f"extends: {TEMPLATE}" in spec.read_text()

    # check, text and GitHub annotations; an error is reported at its line in both.
    assert "all good" in ok(sh(["pipespec", "check"], repo, env))
    ok(sh(["pipespec", "check", "--format", "github", f"pipelines/{PIPELINE}.yaml"], repo, env))
    good = spec.read_text()
    spec.write_text(good.replace("owner:", "ownr:"))
    text, github = (sh(["pipespec", "check", *fmt, f"pipelines/{PIPELINE}.yaml"], repo, env)
                    for fmt in ([], ["--format", "github"]))
    assert text.returncode == 1 and f"pipelines/{PIPELINE}.yaml:" in text.stdout and "ownr" in text.stdout
    assert github.returncode == 1 and f"::error file=pipelines/{PIPELINE}.yaml,line=" in github.stdout
    spec.write_text(good)

    # The repository's pre-commit hook, as pre-commit runs it, on one changed file that consumes the
    # example spec's Asset: the hook must see the rest of the repository.
    example = yaml.safe_load((repo / "pipelines" / "example.yaml").read_text())
    spec.write_text(good + f"train:\n  dataset: {example['data']['publishes']}\n")
    [hook] = [h for r in yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())["repos"]
              for h in r["hooks"] if h["id"] == "pipespec-check"]
    changed = f"pipelines/{PIPELINE}.yaml"
    assert re.search(hook["files"], changed)
    ok(sh([*shlex.split(hook["entry"]), *hook.get("args", []), changed], repo, env))

    # Airflow's DagBag loads every pipeline of the repository, strictly (an invalid spec fails the import).
    loaded = ok(sh([python, "-c", DAGBAG, str(repo / "dags")], repo, {**env, "PIPESPEC_STRICT": "1"}, timeout=300))
    [bag] = [json.loads(line.removeprefix("DAGBAG ")) for line in loaded.splitlines() if line.startswith("DAGBAG ")]
    assert bag["errors"] == {}
    assert {f"{PIPELINE}__data", f"{PIPELINE}__train", f"{PIPELINE}__inference", "example__data"} <= set(bag["dags"])
    assert not [d for d in bag["dags"] if d.startswith("pipespec_invalid__")]

    # The new pipeline's data DAG, run locally on a few rows (the spec reads `data/<name>/` beside it).
    rows = repo / "pipelines" / "data" / PIPELINE
    rows.mkdir(parents=True)
    (rows / "part-0.jsonl").write_text("".join(
        json.dumps({"id": i, "f0": i % 7 / 7, "f1": i % 5 / 5, "f2": i % 3 / 3, "f3": i % 2, "label": i % 2}) + "\n"
        for i in range(200)))
    started = time.perf_counter()
    try:  # about 20 s with the DB migration; a failing task retries with back-off for many minutes
        run = sh(["pipespec", "run", changed, "--until", "data"], repo, env, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pipespec run did not finish in {exc.timeout} s:\n{_tail(exc.stdout)}\n{_tail(exc.stderr)}")
    print(f"pipespec run --until data (with the DB migration): {time.perf_counter() - started:.1f} s")
    assert run.returncode == 0, _tail(run.stdout) + _tail(run.stderr)
    assert f"{PIPELINE}__data success" in run.stdout  # the closing summary of the run
    assert "data gate passed" in run.stdout
    published = repo / ".pipespec-data" / "storage" / "todo-bucket" / PIPELINE / "curated"
    assert published.is_dir() and any(published.rglob("*")), "the data DAG published nothing"


def _tail(output: str | bytes | None, errors_first: int = 4000) -> str:
    """The end of a command's output, with its tracebacks first (a retried task's logs bury them)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else (output or "")
    failures = [block for block in text.split("Traceback (most recent call last):")[1:]][:1]
    return "".join(f"Traceback (most recent call last):{f[:errors_first]}\n" for f in failures) + text[-errors_first:]
