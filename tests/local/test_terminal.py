"""The quiet terminal: logs of every kind (Python, C-level writes, child processes) go
to the log file, the terminal keeps only what the live view prints; and `pipespec run`
shows a table per DAG and the decisions, not Airflow's log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import ROOT


def test_output_to_file_keeps_the_terminal_for_the_view_and_sends_the_rest_to_the_log(tmp_path):
    script = textwrap.dedent("""
        import logging, os, subprocess, sys
        from pathlib import Path
        from pipespec.local.local_env import configure
        configure()
        from pipespec.local.terminal import output_to_file
        logging.basicConfig(level=logging.INFO)
        with output_to_file(Path(sys.argv[1])) as console:
            console.print("VIEW: shown")
            print("PRINT: logged")
            logging.getLogger("airflow").info("LOGGING: logged")
            os.write(2, b"FD2: logged\\n")
            subprocess.run([sys.executable, "-c", "print('CHILD: logged')"], check=True)
        print("AFTER: shown again")
        raise SystemExit("TRACEBACK: shown")
    """)
    log = tmp_path / "logs" / "run.log"
    done = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    shown = done.stdout + done.stderr
    assert "VIEW: shown" in done.stdout and "AFTER: shown again" in done.stdout and "TRACEBACK: shown" in done.stderr
    logged = log.read_text()
    for marker in ("PRINT", "LOGGING", "FD2", "CHILD"):
        assert f"{marker}: logged" in logged and f"{marker}: logged" not in shown
    assert "VIEW" not in logged
    assert log.stat().st_mode & 0o077 == 0  # logs may hold connection hosts and data paths: private


@pytest.mark.slow
def test_pipespec_run_shows_a_table_and_the_gate_not_airflows_log(tmp_path):
    """The feedback pipeline's data DAG through the real CLI, in the project's Airflow home."""
    from pipespec.local.demo import drop, fresh_workspace

    workspace = fresh_workspace(tmp_path / "demo")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPESPEC_STORAGE_ROOT": str(workspace / "storage"),
           "PIPESPEC_CACHE_DIR": str(workspace / "cache"), "COLUMNS": "120",
           "AIRFLOW_CONN_FEEDBACK_DB": f'{{"conn_type": "sqlite", "host": "{workspace / "slack.db"}"}}'}
    saved = os.environ.get("PIPESPEC_STORAGE_ROOT")
    os.environ["PIPESPEC_STORAGE_ROOT"] = env["PIPESPEC_STORAGE_ROOT"]  # drop() writes the holdout there
    try:
        drop(workspace, 0, 160, noise=0.0)
    finally:
        if saved is None:
            os.environ.pop("PIPESPEC_STORAGE_ROOT")
        else:
            os.environ["PIPESPEC_STORAGE_ROOT"] = saved
    spec = workspace / "pipelines" / "user_feedback.yaml"
    done = subprocess.run([sys.executable, "-m", "pipespec.cli", "run", str(spec), "--until", "data"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    log = Path(lines[0].rsplit(": ", 1)[1])
    assert lines[0].startswith("logs (Airflow, tasks, TensorFlow): ") and "[DAG TEST]" in log.read_text()
    assert not any("[info" in line or "[DAG TEST]" in line for line in lines)  # Airflow's log stays in the file
    text = "\n".join(lines)
    assert "user_feedback__data: success in" in text
    assert "data gate passed: 397 records, 397 new; all gates passed" in text  # 3 duplicates dropped
    assert "2/2: " in text and "zendesk" in text and "slack" in text  # the mapped extract, by source
    assert "1 DAG run(s): user_feedback__data success" in text
    assert len(lines) < 40
