"""Running compiled DAGs for real in tests: `dag.test()` (against the DB that
pipespec.local.local_env.ensure_db migrates), and pure test steps swapped in through the registry."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from pipespec.tasklib import steps as registry


@contextmanager
def steps(**implementations):
    """Swap steps by name (`data_extract=fn` for `data.extract`) for the duration of a test."""
    names = {key.replace("_", ".", 1): fn for key, fn in implementations.items()}
    for name, fn in names.items():
        registry.override(name, fn)
    try:
        yield
    finally:
        for name in names:
            registry.override(name, None)


def run_dag(pipelines: Path, dag_id: str, monkeypatch, cache: Path):
    """Compile `pipelines/`, run one DAG with dag.test(); return the run and {(task, map_index): state}."""
    from pipespec.airflow.loader import load_dags

    monkeypatch.setenv("PIPESPEC_PIPELINES", str(pipelines))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(cache))
    namespace: dict = {}
    load_dags(pipelines, namespace, cache)
    run = namespace[dag_id].test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    return run, states
