"""A task process parses the DAG file before its step runs: the file sets the worker environment's
defaults first (pipespec.tasklib.worker_env), so the step's pyarrow allocates from jemalloc, and a
deployment's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARSE_THEN_STEP = """
import runpy, sys
runpy.run_path(sys.argv[1])  # what the task runner does first
import pyarrow as pa         # what the step does next
print(pa.default_memory_pool().backend_name)
"""


def _pool_after_parsing(tmp_path: Path, **env: str) -> str:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environment.update(PIPESPEC_PIPELINES=str(tmp_path / "pipelines"), PIPESPEC_CACHE_DIR=str(tmp_path / "cache"),
                       **env)
    done = subprocess.run([sys.executable, "-c", PARSE_THEN_STEP, str(ROOT / "dags" / "pipespec_dags.py")],
                          env=environment, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_task_process_allocates_arrow_buffers_from_jemalloc(tmp_path):
    assert _pool_after_parsing(tmp_path) == "jemalloc"


def test_the_deployments_own_choice_wins(tmp_path):
    assert _pool_after_parsing(tmp_path, ARROW_DEFAULT_MEMORY_POOL="system") == "system"


C_ENVIRONMENT_AFTER_PARSING = """
import ctypes, runpy, sys
runpy.run_path(sys.argv[1])
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
print((getenv(b"JE_ARROW_MALLOC_CONF") or b"").decode())  # what jemalloc reads at its first allocation
"""


def test_arrows_jemalloc_hands_decayed_pages_back_to_the_os(tmp_path):
    """Set in the C environment (jemalloc's getenv), not only in os.environ; a deployment's own setting wins."""
    (tmp_path / "pipelines").mkdir()
    base = {k: v for k, v in os.environ.items() if k != "JE_ARROW_MALLOC_CONF"}
    base.update(PIPESPEC_PIPELINES=str(tmp_path / "pipelines"), PIPESPEC_CACHE_DIR=str(tmp_path / "cache"))
    for extra, expected in (({}, "muzzy_decay_ms:0"), ({"JE_ARROW_MALLOC_CONF": "narenas:2"}, "narenas:2")):
        done = subprocess.run([sys.executable, "-c", C_ENVIRONMENT_AFTER_PARSING, str(ROOT / "dags" / "pipespec_dags.py")],
                              env={**base, **extra}, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == expected
