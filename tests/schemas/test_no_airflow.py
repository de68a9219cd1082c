"""`pipespec check` must run where Airflow, TensorFlow and MLflow are not installed
(pre-commit, CI): run it in a fresh interpreter in which importing them fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
BLOCKED = ("airflow", "tensorflow", "keras", "mlflow")

PRELUDE = textwrap.dedent(f"""
    import importlib.abc, sys

    BLOCKED = {BLOCKED!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    for blocked in BLOCKED:
        try:
            __import__(blocked)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the import blocker let {{blocked}} through")
""")


def run_blocked(body: str, *args: str) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_check_runs_without_airflow():
    proc = run_blocked("""
        import json
        from pipespec.cli import main
        code = main(["check", "pipelines"])
        print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
    """)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}
    assert "file(s) checked: all good" in proc.stdout


def test_check_reports_errors_without_airflow():
    proc = run_blocked("""
        import sys
        from pipespec.cli import main
        code = main(["check", "--format", "json", sys.argv[1]])
        assert "airflow" not in sys.modules
        sys.exit(code)
    """, str(ROOT / "tests" / "cases" / "invalid" / "metric_wrong_for_model.yaml"))
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert [d["message"] for d in data["diagnostics"]] == ["metric `rmse` does not apply to `keras_text_classifier`"]


def test_schema_and_new_run_without_airflow(tmp_path):
    proc = run_blocked("""
        import shutil, sys
        from pathlib import Path
        from pipespec.cli import main
        out = Path(sys.argv[1])
        assert main(["schema", "--output", str(out / "schema.json")]) == 0
        shutil.copytree("pipelines/templates", out / "templates")
        assert main(["new", "fresh", "--from", "templates/base.yaml", "--dir", str(out)]) == 0
        assert "airflow" not in sys.modules and "tensorflow" not in sys.modules
    """, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "schema.json").read_text() == (ROOT / "schemas" / "pipeline.schema.json").read_text()
    assert (tmp_path / "fresh.yaml").is_file()


def test_the_blocker_really_blocks():
    """The other tests would prove nothing if the blocked packages could still be imported."""
    proc = run_blocked("""
        try:
            import airflow
        except ImportError as exc:
            print("blocked:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "blocked: airflow is blocked in this test" in proc.stdout
