"""Where `make demo`'s time goes: its three rounds (data -> train -> inference, with dag.test() in one
process, as pipespec.local.demo runs them), every step call timed (wall and CPU), and the train and
evaluate steps split into their parts with cProfile (TensorFlow/Keras imports, fitting, saving,
MLflow logging and registering, downloading and loading models, predicting).

The Airflow home (a migrated SQLite DB), the storage, the model registry and the pipelines are a
scratch copy under a temporary directory (--keep DIR to keep it), so the repository's own
.pipespec-data is untouched. The rounds are the demo's own (pipespec.local.demo.drop), with the
same data and decisions; alerts go to the same local receivers.

This is a measurement to decide what to change, not a target: it prints, per round, each DAG's
time and each task's time; then the parts of train and evaluate summed over the rounds; then the
share of the train DAG's time that is not in any step (dag.test's own work: the task runner,
XCom and state writes to SQLite). Exit code 0.

    .venv/bin/python bench/demo_breakdown.py [--keep DIR] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from data_throughput import REPO, load_note, machine, work_directory  # noqa: E402

# (label, module path fragment, function name): cumulative seconds from the profile, summed over calls.
PARTS = (
    ("import tensorflow (first time, in round 1)", "", "", "tensorflow"),
    ("import keras (first time, in round 1)", "", "", "keras"),
    ("import mlflow (first time, in round 1)", "", "", "mlflow"),
    ("keras_models.fit", "keras_models.py", "fit", None),
    ("keras_models.save", "keras_models.py", "save", None),
    ("keras_models.load", "keras_models.py", "load", None),
    ("keras_models.predict", "keras_models.py", "predict", None),
    ("registry.register (MLflow log + register)", "registry.py", "register", None),
    ("registry.download (MLflow artifacts)", "registry.py", "download", None),
    ("evaluate._score_version", "evaluate.py", "_score_version", None),
    ("report.write", "report.py", "write", None),
)


def timed_steps(log: list[dict[str, Any]]) -> None:
    """Swap every registered step for a wrapper that times each call (wall, CPU) into `log`. The
    step's module is imported at its first call, as without the wrapper (imports count where they
    happen)."""
    import importlib

    from pipespec.tasklib import steps

    def timed(name: str) -> Any:
        module, _, attribute = steps.STEPS[name].partition(":")

        def run(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return getattr(importlib.import_module(module), attribute)(*args, **kwargs)
            finally:
                ctx = args[0] if args else None
                log.append({"step": name, "dag": getattr(ctx, "dag_id", "?"), "task": getattr(ctx, "task_id", name),
                            "seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
        return run

    for name in steps.STEPS:
        steps.override(name, timed(name))


def profiled_seconds(stats: pstats.Stats, fragment: str, function: str) -> float:
    """Cumulative seconds of the functions named `function` in files containing `fragment`
    (recursive calls counted once: pstats' cumulative time already does that)."""
    return sum(entry[3] for (path, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
               if name == function and fragment in path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this (new or empty) directory and keep it")
    parser.add_argument("--top", type=int, default=20, help="how many profile lines to print")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with work_directory(parser, args.keep, prefix="pipespec-bench-demo-") as root:
        os.environ.update({"AIRFLOW_HOME": str(root / "airflow"), "PIPESPEC_MODEL_CACHE": str(root / "models"),
                           "TF_CPP_MIN_LOG_LEVEL": "2"})
        sys.path.insert(0, str(REPO))
        from pipespec.local import demo
        from pipespec.local.local_env import configure, ensure_db
        from pipespec.local.sinks import AlertSinks

        workspace = demo.fresh_workspace(root / "demo")
        configure(REPO, pipelines=workspace / "pipelines")  # the DAG folder is the checkout's dags/
        os.environ.update({
            "PIPESPEC_PIPELINES": str(workspace / "pipelines"), "PIPESPEC_STORAGE_ROOT": str(workspace / "storage"),
            "PIPESPEC_CACHE_DIR": str(workspace / "cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'storage' / 'mlflow.db'}",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "AIRFLOW_CONN_FEEDBACK_DB": f'{{"conn_type": "sqlite", "host": "{workspace / "slack.db"}"}}'})
        from pipespec.tasklib.model import runner

        runner.prestart()  # as pipespec.local.demo.main: each training process started ahead
        start = time.perf_counter()
        ensure_db()
        print(f"setup: Airflow DB migrated in {time.perf_counter() - start:.1f} s (not counted below; the demo "
              f"migrates once per checkout)", file=sys.stderr)
        calls: list[dict[str, Any]] = []
        timed_steps(calls)
        rounds = [(0, 160, 0.0), (600, 300, 0.0), (1600, 800, 0.9)]  # pipespec.local.demo.main's drops
        profiler = cProfile.Profile()
        summaries = []
        with AlertSinks() as sinks:
            os.environ.update(sinks.connections())  # Slack webhook and SMTP, as the demo sets them
            total = time.perf_counter()
            for number, (zendesk, slack, noise) in enumerate(rounds, start=1):
                demo.drop(workspace, zendesk, slack, noise)
                first = len(calls)
                began = time.perf_counter()
                profiler.enable()
                summary = demo._round(workspace / "pipelines" / demo.SPEC, number, None)
                profiler.disable()
                summaries.append((number, time.perf_counter() - began, summary, calls[first:]))
            total = time.perf_counter() - total

        print(f"\n`make demo` breakdown: 3 rounds in {total:.1f} s (after the DB migration)")
        print(f"machine: {machine()}; {load_note(load_before)}")
        for number, seconds, summary, mine in summaries:
            decision = summary.get("decision", "-")
            print(f"\nround {number}: {seconds:.1f} s; gate {summary.get('gate', '-')}; decision {decision}")
            for kind, outcome in summary["dags"].items():
                in_steps = [c for c in mine if c["dag"] == outcome.dag_id]
                stepped = sum(c["seconds"] for c in in_steps)
                print(f"  {outcome.dag_id:<28} {outcome.seconds:6.1f} s ({outcome.state}); in steps {stepped:5.1f} s, "
                      f"outside them (dag.test, task runner, SQLite) {outcome.seconds - stepped:5.1f} s")
                by_task: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
                for call in in_steps:
                    entry = by_task[call["task"]]
                    entry[0] += call["seconds"]
                    entry[1] += call["cpu"]
                    entry[2] += 1
                for task, (wall, cpu, count) in sorted(by_task.items(), key=lambda item: -item[1][0]):
                    print(f"      {task:<26} {wall:6.2f} s  cpu {cpu:6.2f} s" + (f"  ({count} calls)" if count > 1 else ""))

        stats = pstats.Stats(profiler)
        print("\nparts of the steps, summed over the 3 rounds (cProfile cumulative seconds, with its overhead):")
        for label, fragment, function, module in PARTS:
            seconds = _import_seconds(stats, module) if module else profiled_seconds(stats, fragment, function)
            print(f"  {label:<46} {seconds:7.2f} s")
        print(f"\n-- top {args.top} by cumulative time --")
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


def _import_seconds(stats: pstats.Stats, module: str) -> float:
    """Cumulative seconds of running `module`'s __init__.py, i.e. its first import."""
    return max((entry[3] for (path, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
                if name == "<module>" and path.endswith(f"/{module}/__init__.py")), default=0.0)


if __name__ == "__main__":
    sys.exit(main())
