"""Register every pipeline's DAGs; make broken specs impossible to miss.

A spec with errors becomes a paused placeholder DAG, `pipespec_invalid__<file>`,
tagged `invalid-spec`, whose doc shows every diagnostic with file:line:col and
whose only task fails with the same text if triggered. The good pipelines
still load. With `PIPESPEC_STRICT=1` (CI) any broken spec fails the import.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from schemas.build import BrokenSpec, build_repo
from schemas.report import text as text_report

from .dag import START_DATE, render_pipeline

log = logging.getLogger("pipespec")


class InvalidSpecs(Exception):
    """Raised in strict mode so the DAG file shows up as an import error."""


def load_dags(pipelines_dir: Path, namespace: dict[str, Any], cache_dir: Path | None = None) -> list[str]:
    # Building thousands of tasks triggers full collections over Airflow's large heap (~10% of a
    # parse at N=100, see bench/dagbag_load.py); nothing here makes reference cycles worth collecting.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(pipelines_dir, namespace, cache_dir)
    finally:
        if collecting:
            gc.enable()


def _load(pipelines_dir: Path, namespace: dict[str, Any], cache_dir: Path | None) -> list[str]:
    build = build_repo(pipelines_dir, cache_dir)
    if build.broken and os.environ.get("PIPESPEC_STRICT") == "1":
        raise InvalidSpecs("\n".join(_report(b) for b in build.broken))
    dag_ids = []
    for pipeline in build.pipelines:
        for dag in render_pipeline(pipeline):
            namespace[dag.dag_id] = dag
            dag_ids.append(dag.dag_id)
    for broken in build.broken:
        log.error("pipespec: invalid spec %s\n%s", broken.file, _report(broken))
        dag = placeholder_dag(broken)
        namespace[dag.dag_id] = dag
        dag_ids.append(dag.dag_id)
    return dag_ids


def _report(broken: BrokenSpec) -> str:
    return text_report(broken.diagnostics, 1)


def placeholder_dag(broken: BrokenSpec) -> DAG:
    stem = re.sub(r"[^a-zA-Z0-9_]", "_", Path(broken.file).stem)
    report = _report(broken)
    with DAG(
        dag_id=f"pipespec_invalid__{stem}",
        schedule=None,
        start_date=START_DATE,
        is_paused_upon_creation=True,
        tags={"pipespec", "invalid-spec"},
        description=f"INVALID SPEC {broken.file}: {broken.diagnostics[0].message if broken.diagnostics else ''}",
        doc_md=f"# Invalid pipespec spec\n\n`{broken.file}` did not compile, so its DAGs are not loaded.\n\n"
               f"```\n{report}\n```\n\nFix the spec and run `pipespec check {broken.file}`.",
    ) as dag:
        @task(task_id="spec_has_errors")
        def spec_has_errors() -> None:
            raise ValueError(f"{broken.file} has errors:\n{report}")

        spec_has_errors()
    return dag
