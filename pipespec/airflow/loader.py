"""Register every pipeline's DAGs; make broken specs impossible to miss.

A spec with errors becomes a paused placeholder DAG, `pipespec_invalid__<file>`,
tagged `invalid-spec`, whose doc shows every diagnostic with file:line:col (never
a source line) and whose only task fails with the same text if triggered. Each
pipeline is rendered on its own: one that Airflow rejects (a check `pipespec
check` missed, an IR cache entry nobody checked) becomes a placeholder too, and
the good pipelines still load. With `PIPESPEC_STRICT=1` (CI) any broken spec
fails the import.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from pipespec.compiler import ir
from pipespec.compiler.build import BrokenSpec, build_repo
from pipespec.schemas.diagnostics import Diagnostic

from pipespec.airflow.dag import START_DATE, render_dag, render_pipeline

log = logging.getLogger("pipespec")
PLACEHOLDER_PREFIX = "pipespec_invalid__"
MAX_DAG_ID = 250  # airflow.sdk.definitions._internal.node.validate_key


class InvalidSpecs(Exception):
    """Raised in strict mode so the DAG file shows up as an import error."""


def load_project(project: Path, namespace: dict[str, Any]) -> list[str]:
    """The DAGs of a project's `pipelines/` (or $PIPESPEC_PIPELINES), cached in `.pipespec-cache/`
    (or $PIPESPEC_CACHE_DIR): what a project's DAG file calls."""
    pipelines = Path(os.environ.get("PIPESPEC_PIPELINES") or project / "pipelines")
    cache = Path(os.environ.get("PIPESPEC_CACHE_DIR") or project / ".pipespec-cache")
    return load_dags(pipelines, namespace, cache)


def load_dags(pipelines_dir: Path, namespace: dict[str, Any], cache_dir: Path | None = None) -> list[str]:
    """Put every pipeline's DAGs, and a placeholder per broken spec, into `namespace`; the DAG ids."""
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
    rendered: list[DAG] = []
    broken = list(build.broken)
    only = _task_dag(build.pipelines)
    for pipeline in build.pipelines:
        # One pipeline's DAGs, or none: whatever Airflow rejects in a spec must not take the others down.
        try:
            rendered += _render_checked(pipeline, *only)
        except Exception as exc:  # noqa: BLE001 - any failure, so a new Airflow check never hides DAGs
            log.exception("pipespec: Airflow rejected the DAGs of %s", pipeline.spec_file)
            broken.append(BrokenSpec(pipeline.spec_file, [_rejected(pipeline, exc)]))
    if broken and os.environ.get("PIPESPEC_STRICT") == "1":
        raise InvalidSpecs("\n".join(_report(b) for b in broken))
    for index, spec in enumerate(broken):
        taken = {d.dag_id for d in rendered}
        try:
            log.error("pipespec: invalid spec %s\n%s", spec.file, _report(spec))
            rendered.append(placeholder_dag(spec, taken))
        except Exception:  # noqa: BLE001 - an odd name or message must not take the other DAGs down
            log.exception("pipespec: could not describe invalid spec #%d", index)
            rendered.append(placeholder_dag(BrokenSpec(f"invalid_spec_{index}", [Diagnostic(
                f"invalid_spec_{index}", 1, 1, "", "a spec is invalid and could not be described here",
                "run `pipespec check` on the specs folder", code="internal")]), taken))
    for dag in rendered:
        namespace[dag.dag_id] = dag
    return [dag.dag_id for dag in rendered]


def _task_dag(pipelines: list[ir.Pipeline]) -> tuple[str | None, str | None]:
    """In a task process, the ids of the DAG and the task it runs, when a pipeline compiled the DAG:
    that process needs only this DAG, and rendering every other one cost each task ~0.1 s per
    pipeline. (None, None) everywhere else (the dag-processor, dag.test, the CLI): every DAG is rendered.

    Every spec is still compiled (from the cache) and checked against the others first, so a
    pipeline that lost its DAG ids or Assets to another one is not rendered here either."""
    from airflow.sdk import get_parsing_context

    context = get_parsing_context()
    if context.dag_id and any(dag.dag_id == context.dag_id for pipeline in pipelines for dag in pipeline.dags):
        return context.dag_id, context.task_id
    return None, None  # a placeholder's task (or none): render all, placeholders included


def _render_checked(pipeline: ir.Pipeline, only: str | None = None, running_task: str | None = None) -> list[DAG]:
    """Render (only the DAG `only` when given, for the task process of `running_task`) and run the
    checks the DagBag runs before bagging a DAG, which drops a DAG that fails them."""
    if only is None:
        dags = render_pipeline(pipeline)
    else:
        dags = [render_dag(spec, running_task) for spec in pipeline.dags if spec.dag_id == only]
    for dag in dags:
        dag.validate()
        dag.check_cycle()
    return dags


def _rejected(pipeline: ir.Pipeline, exc: Exception) -> Diagnostic:
    return Diagnostic(pipeline.spec_file, 1, 1, "", f"Airflow rejected this pipeline's DAGs: "
                      f"{_bounded(f'{type(exc).__name__}: {exc}')}",
                      "`pipespec check` accepted this spec, so this is a pipespec bug: report it with this "
                      "message; meanwhile change the setting it names", code="render")


def _bounded(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _report(broken: BrokenSpec) -> str:
    # Never the source lines: a spec may be a symlink to a worker's secret file, and the doc, the task's
    # error and the import error are all shown in the UI.
    from pipespec.schemas.reporters import text as text_report  # detect-secrets: ~0.1 s a task process needs not

    return text_report(broken.diagnostics, 1, excerpts=False)


def placeholder_id(file: str, taken: Collection[str] = ()) -> str:
    """`pipespec_invalid__<file stem>`, within Airflow's id limit and unique among `taken`."""
    stem = re.sub(r"[^a-zA-Z0-9_]", "_", Path(file).stem)
    dag_id = PLACEHOLDER_PREFIX + stem
    if len(dag_id) <= MAX_DAG_ID and dag_id not in taken:
        return dag_id
    # Names that were cut or collide (two files, one stem) stay apart by a hash of the whole path.
    suffix = "_" + hashlib.sha256(file.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return dag_id[: MAX_DAG_ID - len(suffix)] + suffix


def placeholder_dag(broken: BrokenSpec, taken: Collection[str] = ()) -> DAG:
    """A paused DAG that shows a broken spec's diagnostics in the Airflow UI."""
    report = _report(broken)
    first = broken.diagnostics[0].message if broken.diagnostics else ""
    with DAG(
        dag_id=placeholder_id(broken.file, taken),
        schedule=None,
        start_date=START_DATE,
        is_paused_upon_creation=True,
        tags={"pipespec", "invalid-spec"},
        description=_bounded(f"INVALID SPEC {broken.file}: {first}"),
        doc_md=f"# Invalid pipespec spec\n\n`{broken.file}` did not compile, so its DAGs are not loaded.\n\n"
               f"```\n{report}\n```\n\nFix the spec and run `pipespec check {broken.file}`.",
    ) as dag:
        @task(task_id="spec_has_errors")
        def spec_has_errors() -> None:
            raise ValueError(f"{broken.file} has errors:\n{report}")

        spec_has_errors()
    return dag
