"""`make demo` until the end-to-end job lands: check every example spec, show
what a mistake looks like, print a compiled graph, and load the DAGs the way
Airflow's dag-processor does."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from schemas import report
from schemas.check import check_file, discover
from schemas.repo import check_repo

ROOT = Path(__file__).resolve().parent.parent
TYPO = """pipeline: demo_typo
extends: templates/text_classifier.yaml
data:
  sources:
    - {name: zendesk, type: local, path: data/z/, format: jsonll}
  treshold: {min_records: 100}
  publishes: s3://demo-bucket/curated/
"""


def step(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def main() -> None:
    step("1. pipespec check pipelines/")
    files, _ = discover([ROOT / "pipelines"])
    checked = [check_file(f) for f in files]
    diagnostics = [d for c in checked for d in c.diagnostics] + check_repo(checked)
    print(report.text(diagnostics, len(files)))

    step("2. a spec with two mistakes (as a user would see them)")
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "demo_typo.yaml"
        (Path(tmp) / "templates").symlink_to(ROOT / "pipelines" / "templates")
        spec.write_text(TYPO)
        print(report.text(check_file(spec).diagnostics, 1))

    step("3. pipespec graph pipelines/user_feedback.yaml (Mermaid, for the PR)")
    try:
        from schemas.graph import to_mermaid
        from schemas.compile import compile_checked

        feedback = check_file(ROOT / "pipelines" / "user_feedback.yaml")
        print(to_mermaid(compile_checked(feedback)))
    except ImportError:
        print("(graph export not available)")

    step("4. Airflow DagBag over dags/ (what the dag-processor sees)")
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    os.environ.setdefault("PIPESPEC_CACHE_DIR", str(ROOT / ".pipespec-cache"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipespec_dags.py"))
    for dag_id, dag in sorted(bag.dags.items()):
        mapped = [t.task_id for t in dag.tasks if t.is_mapped]
        print(f"  {dag_id:<32} {len(dag.tasks):>2} tasks  schedule={_schedule(dag)}"
              + (f"  mapped: {', '.join(mapped)}" if mapped else ""))
    print(f"  import errors: {bag.import_errors or 'none'}  ({time.perf_counter() - started:.1f}s incl. Airflow import)")
    print("\nNext: `pipespec check`, `pipespec graph SPEC`; see README.md for the 5-minute tour.")


def _schedule(dag) -> str:
    timetable = dag.timetable
    expression = getattr(timetable, "expression", None)
    if expression:
        return expression
    return type(timetable).__name__


if __name__ == "__main__":
    main()
