"""pipespec.airflow.preload: what the processes that fork task processes import, and that it is safe
to fork after it (no thread started). Its effect on speed is measured in bench/scheduler_e2e.py;
the scheduler and Celery tests run their task processes forked from preloaded workers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipespec.airflow.preload import LOCAL_SETTINGS, forks_tasks, install


@pytest.mark.parametrize(("argv", "forks"), [
    (["airflow", "scheduler"], True), (["airflow", "scheduler", "--skip-serve-logs"], True),
    (["airflow", "celery", "worker", "--concurrency", "2"], True), (["airflow", "api-server"], False),
    (["airflow", "dag-processor"], False), (["airflow", "celery", "flower"], False), (["python"], False),
])
def test_only_the_processes_that_fork_tasks_preload(argv, forks):
    assert forks_tasks(argv) is forks


def test_preloading_starts_no_thread_and_sets_the_worker_environment(tmp_path):
    probe = ("import sys, threading, os; sys.argv = ['airflow', 'scheduler']; import pipespec.airflow.preload; "
             "print(threading.active_count(), 'pyarrow.compute' in sys.modules, "
             "'pipespec.tasklib.data.extract' in sys.modules, os.environ.get('ARROW_DEFAULT_MEMORY_POOL'), "
             "'tensorflow' in sys.modules, 'boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
                              "AIRFLOW_HOME": str(tmp_path)}).stdout.split()
    assert out == ["1", "True", "True", "jemalloc", "False", "True"]  # boto3: the s3:// Asset normaliser


def test_install_never_replaces_a_deployments_own_settings(tmp_path):
    settings = install(tmp_path)
    assert settings == tmp_path / "config" / "airflow_local_settings.py" and settings.read_text() == LOCAL_SETTINGS
    settings.write_text("# the platform team's own\n")
    install(tmp_path)
    assert settings.read_text() == "# the platform team's own\n"
