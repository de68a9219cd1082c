"""How long does Airflow take to load pipespec's DAGs, next to the same DAGs written by hand and
the same DAGs in dag-factory YAML?

What is measured: the construction of `airflow.dag_processing.dagbag.DagBag(dag_folder=FILE)`,
which is what the dag-processor does with a DAG file (import it, collect, validate and bag its
DAGs). Every measurement is a fresh Python process, so no variant profits from modules another
one imported: the child imports `airflow` and the DagBag class first (not timed; every variant
needs them), then times only the DagBag construction, and reports its peak RSS
(resource.getrusage) and CPU time. No database is needed for parsing; AIRFLOW_HOME is a temporary
directory and examples are off.

Variants, for N = 1, 100 and 1,000 generated pipelines (3 DAGs each: data, train, inference):

  pipespec cold   dags/pipespec_dags.py with PIPESPEC_PIPELINES=<the N specs> and an empty IR
                  cache (PIPESPEC_CACHE_DIR): every spec is loaded, checked and compiled
  pipespec warm   the same with the cache populated: the steady state of the dag-processor
  hand-written    ONE generated Python file with the same DAGs written the idiomatic way:
                  `airflow.sdk` DAG, TaskFlow `@task` (`task(run_step).override(...)`), `.partial()
                  .expand()` mapping, `task.branch`, Asset schedules, retries, notifier callbacks,
                  calling the same pipespec.airflow.adapter.run_step / run_branch. This is the baseline.
  dag-factory     dag-factory 1.1.0 `load_yaml_dags` over one YAML file per pipeline, exported by
                  pipespec.compiler.export_dagfactory (or, when that module does not exist or with
                  --builtin-exporter, by the small exporter in this file, for these DAG shapes)

How: N copies of pipelines/user_feedback.yaml (which extends templates/text_classifier.yaml) are
written to a temporary directory with unique pipeline names (feedback_0000, ...) and unique Asset
URIs (s3://feedback-0000/..., model://feedback_0000). The first run of every variant is a
verification: it must load with no import errors and yield the same DAG ids, the same task ids
per DAG, and (for hand-written) the same edges as pipespec, or the bench stops. Its timing counts,
except for hand-written, whose first run compiles the big generated file to .pyc: every counted
run starts from compiled bytecode, as in a long-running dag-processor (pipespec's modules are
compiled up front). Then the variants take turns, one run each per round, so that a busy spell on
a shared machine hits all of them alike. Each figure is the best of --repeat runs (fewer once a
variant has used --budget seconds; a cold run always gets a new, empty cache). `cpu s` is the best
CPU time (user + sys) of the same runs; `gc s` the CPU time spent in the cyclic garbage collector
(which cProfile cannot see). The project's code is copied to the work directory first, so a
working tree that changes during the run cannot mix two versions of the code (the children import
the copy through PYTHONPATH, ahead of the venv's editable install of the checkout).

Targets (judged on wall-clock seconds; --judge cpu judges CPU seconds, which a busy machine
inflates less):
  - pipespec (warm) within 1.1x of hand-written at N=100
  - pipespec (warm) at most half of dag-factory's time at N=100
  - pipespec (warm) within 1.1x of hand-written at N=1,000, and so is the dag-processor's CPU per parse
    cycle (DagBag + serialization)
  - pipespec at N=1,000, cold and warm, well inside dagbag_import_timeout (30 s): under 15 s

When a pipespec target is missed (or with --profile), the pipespec loader is profiled with
cProfile at N=100 (warm) in a fresh process and the top hotspots are printed.

    .venv/bin/python bench/dagbag_load.py [--quick] [--sizes 1,100] [--repeat 3] [--budget 120]
                                          [--keep DIR] [--profile] [--judge wall|cpu]
                                          [--builtin-exporter] [--no-dagfactory] [--assert]

--quick runs N=1 and 100 only; --no-dagfactory leaves dag-factory out (~80 s a run at N=1,000), and
with it the target that compares with it. The exit code is 0 regardless (this is a measurement);
with --assert it is 1 when a target is missed.
"""

# Only the standard library at module level: this file is also the child process that does the
# timing, and importing pipespec or yaml here would pre-load modules for one variant.
from __future__ import annotations

import argparse
import compileall
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
# The project's code is measured from a snapshot taken at the start (see `snapshot`); CODE is its root.
CODE = REPO
CODE_PACKAGES = ("dags", "pipespec", "schemas", "tasklib", "pipelines")

SIZES = (1, 100, 1000)
QUICK_SIZES = (1, 100)
IMPORT_TIMEOUT = 30.0  # Airflow's default [core] dagbag_import_timeout
WELL_INSIDE = 0.5  # "well inside" the timeout: at most this fraction of it
HAND = "hand-written"
VARIANTS = ("pipespec cold", "pipespec warm", HAND, "dag-factory")


# =========================================================================== the child process

def child(argv: list[str]) -> int:
    """`dagbag_load.py --child DAG_FILE OUT_JSON [--dump] [--profile PSTATS]`: time one DagBag."""
    parser = argparse.ArgumentParser(prog="dagbag_load.py --child")
    parser.add_argument("dag_file")
    parser.add_argument("out")
    parser.add_argument("--dump", action="store_true", help="also write every DAG's tasks and edges")
    parser.add_argument("--profile", help="run the DagBag under cProfile; write the stats here")
    args = parser.parse_args(argv)

    import airflow  # noqa: F401  (not timed: every variant needs it)
    from airflow.dag_processing.dagbag import DagBag

    def build() -> Any:
        return DagBag(dag_folder=args.dag_file)

    # CPU seconds in the cyclic garbage collector, which cProfile cannot see.
    gc_seconds, gc_start = [0.0], [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_seconds[0] += time.process_time() - gc_start[0]

    gc.callbacks.append(on_gc)
    rss_before = _peak_rss_mb()
    cpu_before, start = _cpu_seconds(), time.perf_counter()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        bag = profiler.runcall(build)
        profiler.dump_stats(args.profile)
    else:
        bag = build()
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_before
    gc.callbacks.remove(on_gc)
    # The rest of a dag-processor parse cycle: it serializes every DAG it parsed (for the database).
    from airflow.serialization.serialized_objects import DagSerialization

    cpu_before = _cpu_seconds()
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
    serialize_cpu = _cpu_seconds() - cpu_before
    result: dict[str, Any] = {
        "seconds": seconds, "cpu": cpu, "gc": gc_seconds[0], "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb(),
        "serialize_cpu": serialize_cpu,
        "dags": len(bag.dags), "tasks": sum(len(dag.tasks) for dag in bag.dags.values()),
        "import_errors": bag.import_errors,
    }
    if args.dump:
        result["structure"] = {dag_id: {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
                               for dag_id, dag in bag.dags.items()}
    Path(args.out).write_text(json.dumps(result))
    return 0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# =========================================================================== generation

def generate_specs(directory: Path, count: int) -> list[Path]:
    """`count` copies of user_feedback.yaml with their own names and Asset URIs."""
    directory.mkdir(parents=True)
    source_spec = CODE / "pipelines" / "user_feedback.yaml"
    shutil.copytree(CODE / "pipelines" / "templates", directory / "templates")
    source = source_spec.read_text()
    replacements = {"pipeline: user_feedback\n": "pipeline: {name}\n", "s3://feedback/": "s3://{bucket}/",
                    "model://user_feedback": "model://{name}"}
    for old in replacements:
        assert old in source, f"{source_spec} changed: `{old}` is no longer in it; update generate_specs"
    paths = []
    for i in range(count):
        name = f"feedback_{i:04d}"
        text = source
        for old, new in replacements.items():
            text = text.replace(old, new.format(name=name, bucket=name.replace("_", "-")))
        path = directory / f"{name}.yaml"
        path.write_text(f"# generated by bench/dagbag_load.py from pipelines/user_feedback.yaml\n{text}")
        paths.append(path)
    return paths


def compile_specs(directory: Path, count: int) -> list[Any]:
    """The IR, exactly as the warm loader sees it (a JSON round trip, as through the cache)."""
    from pipespec.compiler.build import build_repo
    from pipespec.compiler.ir import Pipeline

    build = build_repo(directory)
    if build.broken:
        sys.exit(f"bench: generated specs do not compile: {build.broken[0]}")
    pipelines = [Pipeline.from_json(json.loads(json.dumps(p.to_json()))) for p in build.pipelines]
    assert len(pipelines) == count and all(len(p.dags) == 3 for p in pipelines), "expected 3 DAGs per pipeline"
    return sorted(pipelines, key=lambda p: p.name)


# --------------------------------------------------------------------------- hand-written DAG file

HAND_HEADER = '''"""{count} pipelines x 3 Airflow DAGs, written by hand (the same DAGs pipespec builds).

Generated by bench/dagbag_load.py as the idiomatic hand-written equivalent: TaskFlow tasks that
call the task library through pipespec.airflow.adapter, exactly like pipespec's DAG builder does.
"""

import sys
from datetime import datetime, timedelta, timezone

sys.path.insert(0, {repo!r})

from airflow.sdk import DAG, Asset, AssetAll, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, task

from pipespec.airflow.adapter import run_branch, run_step
from pipespec.airflow.notifier import PipespecNotifier

START = datetime(2024, 1, 1, tzinfo=timezone.utc)

step = task(run_step)
branch = task.branch(run_branch)
'''
_RESERVED = {"sys", "datetime", "timedelta", "timezone", "DAG", "Asset", "AssetAll", "AssetAny",
             "AssetOrTimeSchedule", "CronTriggerTimetable", "task", "run_branch", "run_step",
             "PipespecNotifier", "START", "step", "branch"}


def hand_written_source(pipelines: list[Any]) -> str:
    parts = [HAND_HEADER.format(count=len(pipelines), repo=str(CODE))]
    for pipeline in pipelines:
        parts.append(f"\n\n# {'-' * 80} {pipeline.name}\n")
        for dag in pipeline.dags:
            parts.append("\n" + _hand_dag(dag))
    return "".join(parts)


def _hand_dag(dag: Any) -> str:
    default_args = [f'"owner": {dag.owner!r}', *_hand_retry(dag.retry, dict_form=True)]
    pipeline = dag.dag_id.rsplit("__", 1)[0]
    for event, key in (("failure", "on_failure_callback"), ("retry", "on_retry_callback")):
        channels = [{"channel": a.channel, **a.settings} for a in dag.alerts if event in a.events]
        if channels:
            default_args.append(f'"{key}": [PipespecNotifier(pipeline={pipeline!r}, event={event!r}, '
                                f'channels={channels!r})]')
    lines = [
        "with DAG(",
        f"    dag_id={dag.dag_id!r},",
        f"    schedule={_hand_schedule(dag.schedule)},",
        "    start_date=START,",
        "    catchup=False,",
        "    max_active_runs=1,",
        f"    description={dag.description!r},",
        f"    doc_md={dag.doc_md!r},",
        "    tags={" + ", ".join(map(repr, dag.tags)) + "},",
        "    default_args={" + ", ".join(default_args) + "},",
        "):",
    ]
    names = {t.task_id: _identifier(t.task_id) for t in dag.tasks}
    for t in dag.tasks:
        lines.append(f"    {names[t.task_id]} = {_hand_task(t, dag, names)}")
    # Edges that no data input implies, grouped by upstream task: `gate >> [publish, notify]`.
    explicit: dict[str, list[str]] = {}
    for t in dag.tasks:
        implied = set(t.inputs.values()) | ({t.mapping.over} if t.mapping and t.mapping.over else set())
        for upstream in t.upstream:
            if upstream not in implied:
                explicit.setdefault(upstream, []).append(names[t.task_id])
    for upstream, downstream in explicit.items():
        target = downstream[0] if len(downstream) == 1 else "[" + ", ".join(downstream) + "]"
        lines.append(f"    {names[upstream]} >> {target}")
    return "\n".join(lines) + "\n"


def _identifier(task_id: str) -> str:
    assert task_id.isidentifier(), task_id
    return f"{task_id}_" if task_id in _RESERVED else task_id


def _hand_task(t: Any, dag: Any, names: dict[str, str]) -> str:
    if t.kind not in ("python", "branch"):
        raise NotImplementedError(f"hand-written generator: task kind {t.kind} (not in user_feedback)")
    options = [f"task_id={t.task_id!r}"]
    if t.mapping is not None:
        options.append('map_index_template="{{ map_label }}"')
    if t.trigger_rule != "all_success":
        options.append(f"trigger_rule={t.trigger_rule!r}")
    if t.outlets:
        options.append("outlets=[" + ", ".join(f"Asset({uri!r})" for uri in t.outlets) + "]")
    if t.retry is not None and t.retry != dag.retry:  # equal retries come from default_args
        options += _hand_retry(t.retry, dict_form=False)
    if getattr(t, "timeout_s", None):
        options.append(f"execution_timeout=timedelta(seconds={t.timeout_s})")
    options.append(f"doc_md={t.doc!r}")
    call = [f"step={t.step!r}", f"step_params={t.params!r}"]
    if t.kind == "branch":
        call.append(f"branches={t.branches!r}")
    if t.inputs:
        call.append("inputs={" + ", ".join(f"{arg!r}: {names[src]}" for arg, src in t.inputs.items()) + "}")
    decorated = f"{'branch' if t.kind == 'branch' else 'step'}.override({', '.join(options)})"
    if t.mapping is None:
        return f"{decorated}({', '.join(call)})"
    mapping = t.mapping
    call += [f"map_arg={mapping.arg!r}", f"map_label={mapping.label!r}"]
    items = names[mapping.over] if mapping.over else repr(list(mapping.items))
    return f"{decorated}.partial({', '.join(call)}).expand(item={items})"


def _hand_retry(retry: Any, dict_form: bool) -> list[str]:
    if retry is None:
        return []
    pairs = [("retries", repr(retry.count)), ("retry_delay", f"timedelta(seconds={retry.delay_s})"),
             ("retry_exponential_backoff", repr(retry.exponential))]
    if retry.max_delay_s:
        pairs.append(("max_retry_delay", f"timedelta(seconds={retry.max_delay_s})"))
    return [f'"{k}": {v}' if dict_form else f"{k}={v}" for k, v in pairs]


def _hand_schedule(schedule: Any) -> str:
    if schedule.kind == "none":
        return "None"
    if schedule.kind == "cron":
        return repr(schedule.cron)
    assets = _hand_assets(schedule.assets)
    if schedule.kind == "assets":
        return assets
    return (f'AssetOrTimeSchedule(timetable=CronTriggerTimetable({schedule.cron!r}, timezone="UTC"), '
            f"assets={assets})")


def _hand_assets(expr: Any) -> str:
    if isinstance(expr, str):
        return f"Asset({expr!r})"
    kind = "all" if "all" in expr else "any"
    return f"Asset{kind.capitalize()}(" + ", ".join(_hand_assets(e) for e in expr[kind]) + ")"


# --------------------------------------------------------------------------- dag-factory files

DAGFACTORY_LOADER = '''"""Airflow DAGs from the dag-factory YAML files next to this file (bench/dagbag_load.py)."""

import sys
from pathlib import Path

sys.path.insert(0, {repo!r})  # the YAML names pipespec.airflow.adapter.run_step

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "dagfactory"))
'''


def dagfactory_exporter(builtin: bool) -> tuple[Any, str]:
    if not builtin:
        try:
            from pipespec.compiler.export_dagfactory import export_dagfactory
        except ImportError:
            pass
        else:
            return export_dagfactory, "pipespec.compiler.export_dagfactory"
    return builtin_export_dagfactory, "the minimal exporter in bench/dagbag_load.py"


def write_dagfactory(directory: Path, pipelines: list[Any], export: Any) -> Path:
    folder = directory / "dagfactory"
    folder.mkdir()
    for pipeline in pipelines:
        (folder / f"{pipeline.name}.yaml").write_text(export(pipeline))
    loader = directory / "dagfactory_dags.py"
    loader.write_text(DAGFACTORY_LOADER.format(repo=str(CODE)))
    return loader


def builtin_export_dagfactory(pipeline: Any) -> str:
    """A minimal IR -> dag-factory YAML exporter for the user_feedback DAG shapes (python and branch
    tasks, static and upstream mapping, cron / Asset / Asset-or-cron schedules). Used only while
    pipespec.compiler.export_dagfactory does not exist, or with --builtin-exporter.

    dag-factory cannot put task outputs inside a dict argument (`inputs`), so they are Jinja
    `xcom_pull` templates rendered as native objects, and the edges are explicit `dependencies`.
    """
    import yaml

    def timedelta_(seconds: int) -> dict:
        return {"__type__": "datetime.timedelta", "seconds": seconds}

    def retry_args(retry: Any) -> dict:
        if retry is None:
            return {}
        args = {"retries": retry.count, "retry_delay": timedelta_(retry.delay_s),
                "retry_exponential_backoff": retry.exponential}
        if retry.max_delay_s:
            args["max_retry_delay"] = timedelta_(retry.max_delay_s)
        return args

    def assets(expr: Any) -> dict:  # dag-factory builds `__type__` objects while loading the YAML
        if isinstance(expr, str):
            return {"__type__": "airflow.sdk.Asset", "uri": expr}
        kind = "all" if "all" in expr else "any"
        return {"__type__": f"airflow.sdk.Asset{kind.capitalize()}", "__args__": [assets(e) for e in expr[kind]]}

    def schedule(s: Any) -> Any:
        if s.kind == "none":
            return "None"
        if s.kind == "cron":
            return s.cron
        if s.kind == "assets":
            return assets(s.assets)
        return {"__type__": "airflow.sdk.AssetOrTimeSchedule", "assets": assets(s.assets),
                "timetable": {"__type__": "airflow.sdk.CronTriggerTimetable", "__args__": [s.cron], "timezone": "UTC"}}

    def inputs(t: Any) -> dict:
        return {arg: f"{{{{ ti.xcom_pull(task_ids='{src}') }}}}" for arg, src in t.inputs.items()}

    def task_conf(t: Any, dag: Any) -> dict:
        conf: dict[str, Any] = {}
        if t.kind == "branch":
            conf["operator"] = "airflow.providers.standard.operators.python.BranchPythonOperator"
            conf["python_callable"] = "pipespec.airflow.adapter.run_branch"
            conf["op_kwargs"] = {"step": t.step, "step_params": t.params, "branches": t.branches,
                                 "inputs": inputs(t)}
        elif t.kind == "python":
            conf["decorator"] = "airflow.sdk.task"
            conf["python_callable"] = "pipespec.airflow.adapter.run_step"
            call = {"step": t.step, "step_params": t.params, "inputs": inputs(t)}
            if t.mapping is None:
                conf.update(call)
            else:
                conf["map_index_template"] = "{{ map_label }}"
                conf["partial"] = {**call, "map_arg": t.mapping.arg, "map_label": t.mapping.label}
                conf["expand"] = {"item": f"+{t.mapping.over}" if t.mapping.over else list(t.mapping.items)}
        else:
            raise NotImplementedError(f"builtin dag-factory exporter: task kind {t.kind}")
        if t.trigger_rule != "all_success":
            conf["trigger_rule"] = t.trigger_rule
        if t.outlets:
            conf["outlets"] = list(t.outlets)
        if t.retry is not None and t.retry != dag.retry:
            conf.update(retry_args(t.retry))
        if getattr(t, "timeout_s", None):
            conf["execution_timeout"] = timedelta_(t.timeout_s)
        conf["doc_md"] = t.doc
        upstream = dict.fromkeys([*t.upstream, *t.inputs.values()])
        if upstream:
            conf["dependencies"] = list(upstream)
        return conf

    document = {}
    for dag in pipeline.dags:
        default_args: dict[str, Any] = {"owner": dag.owner, **retry_args(dag.retry)}
        for event, key in (("failure", "on_failure_callback"), ("retry", "on_retry_callback")):
            channels = [{"channel": a.channel, **a.settings} for a in dag.alerts if event in a.events]
            if channels:
                default_args[key] = {"callback": "pipespec.airflow.notifier.PipespecNotifier", "pipeline": pipeline.name,
                                     "event": event, "channels": channels}
        document[dag.dag_id] = {
            "description": dag.description, "doc_md": dag.doc_md, "tags": list(dag.tags),
            "schedule": schedule(dag.schedule), "start_date": "2024-01-01", "catchup": False,
            "max_active_runs": 1, "render_template_as_native_obj": True, "default_args": default_args,
            "tasks": {t.task_id: task_conf(t, dag) for t in dag.tasks},
        }
    return yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


# =========================================================================== running children

@dataclass
class Workload:
    n: int
    directory: Path
    specs: Path  # PIPESPEC_PIPELINES
    hand_file: Path
    dagfactory_file: Path
    warm_cache: Path
    env: dict[str, str]
    cold_runs: int = 0

    def dag_file(self, variant: str) -> Path:
        pipespec_dag_file = CODE / "dags" / "pipespec_dags.py"
        return {HAND: self.hand_file, "dag-factory": self.dagfactory_file}.get(variant, pipespec_dag_file)

    def variant_env(self, variant: str) -> dict[str, str]:
        if variant == "pipespec cold":
            self.cold_runs += 1
            cache = self.directory / f"cold-cache-{self.cold_runs}"  # new and empty every time
        else:
            cache = self.warm_cache
        return {**self.env, "PIPESPEC_CACHE_DIR": str(cache)}


def base_env(home: Path, dags_folder: Path, specs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPESPEC"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the timed runs reuse the .pyc of the untimed one
    # The snapshot's pipespec, not the checkout's that the venv's editable install puts on sys.path.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CODE), env.get("PYTHONPATH")]))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),  # also where dag-factory looks for defaults.yml
        # Generous, so that a slow variant still yields a figure; the 30 s target is judged below.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "3600",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PIPESPEC_PIPELINES": str(specs),
        "PIPESPEC_STRICT": "1",  # an invalid spec is an import error, not a placeholder DAG
        # No telemetry (and there is no network here anyway).
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False", "DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "True",
        "SCARF_ANALYTICS": "false", "DAG_FACTORY_SCARF_ANALYTICS": "False",
    })
    return env


def run_child(workload: Workload, variant: str, dump: bool = False, profile: Path | None = None,
              expect_dags: int | None = None) -> dict:
    out = workload.directory / "child-result.json"
    out.unlink(missing_ok=True)
    argv = [str(PYTHON), str(Path(__file__).resolve()), "--child", str(workload.dag_file(variant)), str(out)]
    if dump:
        argv.append("--dump")
    if profile:
        argv += ["--profile", str(profile)]
    proc = subprocess.run(argv, cwd=CODE, env=workload.variant_env(variant), capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"bench: the {variant} child failed at N={workload.n} (exit {proc.returncode})\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    if result["import_errors"]:
        first = next(iter(result["import_errors"].items()))
        sys.exit(f"bench: {variant} at N={workload.n} has import errors:\n{first[0]}:\n{first[1][-3000:]}")
    if expect_dags is not None and result["dags"] != expect_dags:
        # dag-factory logs a file it cannot load and goes on: its traceback is only in the output.
        sys.exit(f"bench: {variant} at N={workload.n} loaded {result['dags']} DAGs, expected {expect_dags}\n"
                 f"{proc.stderr[-4000:]}")
    return result


def prepare(root: Path, n: int, exporter: Any) -> Workload:
    directory = root / f"n{n}"
    specs = directory / "pipelines"
    generate_specs(specs, n)
    pipelines = compile_specs(specs, n)
    hand_file = directory / "hand_written_dags.py"
    hand_file.write_text(hand_written_source(pipelines))
    dagfactory_file = write_dagfactory(directory, pipelines, exporter)
    env = base_env(root / "airflow-home", directory, specs)
    return Workload(n, directory, specs, hand_file, dagfactory_file, directory / "warm-cache", env)


def check_structures(structures: dict[str, dict], n: int) -> list[str]:
    """Every variant must yield pipespec's DAG ids and task ids; hand-written also its edges.
    Returns the DAGs whose edges differ in dag-factory (reported, not fatal)."""
    reference = structures["pipespec cold"]
    assert len(reference) == 3 * n, f"pipespec: {len(reference)} DAGs, expected {3 * n}"
    for variant, structure in structures.items():
        assert sorted(structure) == sorted(reference), f"{variant}: DAG ids differ from pipespec's"
        for dag_id, tasks in reference.items():
            assert sorted(structure[dag_id]) == sorted(tasks), f"{variant}: {dag_id}: task ids differ"
    assert structures["pipespec warm"] == reference, "pipespec: warm and cold DAGs differ"
    assert structures[HAND] == reference, "hand-written: edges differ from pipespec's"
    if "dag-factory" not in structures:
        return []
    return [d for d in reference if structures["dag-factory"][d] != reference[d]]


@dataclass
class Row:
    n: int
    variant: str
    dags: int
    tasks: int = 0
    runs: list[dict] = field(default_factory=list)
    spent: float = 0.0  # wall seconds of all its child processes, imports included

    @property
    def best(self) -> dict:
        return min(self.runs, key=lambda r: r["seconds"])

    def seconds(self, judge: str = "wall") -> float:
        return self.best["seconds"] if judge == "wall" else min(r["cpu"] for r in self.runs)


def measure(workload: Workload, repeat: int, budget: float,
            variants: tuple[str, ...] = VARIANTS) -> tuple[list[Row], list[str]]:
    """Round 0 verifies: one run per variant with the DAG structure dumped and compared (its DagBag is
    timed like any other; the dump comes after). Its cold run fills the warm cache; the hand-written
    file's first run compiles the .py to .pyc, so that one timing is dropped. Then rounds of one run
    per variant, interleaved, so a busy spell on a shared machine hits every variant alike, until each
    has `repeat` runs or has used `budget` seconds (one run at least)."""
    dags = 3 * workload.n
    rows = {variant: Row(workload.n, variant, dags) for variant in variants}

    def run(variant: str, dump: bool = False) -> dict:
        row, start = rows[variant], time.perf_counter()
        # The first cold run uses the (still empty) warm cache, and so fills it for the warm runs.
        result = run_child(workload, "pipespec warm" if dump and variant == "pipespec cold" else variant,
                           dump=dump, expect_dags=dags)
        row.spent += time.perf_counter() - start
        row.tasks = result["tasks"]
        if not (dump and variant == HAND):
            row.runs.append(result)
        print(f"  N={workload.n:<5} {variant:<14} {result['seconds']:8.3f} s  cpu {result['cpu']:8.3f} s"
              f"{'  (verification run)' if dump else ''}", file=sys.stderr)
        return result

    structures = {variant: run(variant, dump=True).pop("structure") for variant in variants}
    dagfactory_edge_diffs = check_structures(structures, workload.n)
    tasks = {row.tasks for row in rows.values()}
    assert len(tasks) == 1, f"task counts differ: { {r.variant: r.tasks for r in rows.values()} }"
    print(f"N={workload.n}: {dags} DAGs, {tasks.pop()} tasks in every variant; no import errors", file=sys.stderr)

    def wants_more(row: Row) -> bool:
        return len(row.runs) < repeat and (not row.runs or row.spent < budget)

    while any(wants_more(row) for row in rows.values()):
        for variant in variants:
            if wants_more(rows[variant]):
                run(variant)
    return list(rows.values()), dagfactory_edge_diffs


# =========================================================================== report

def print_table(rows: list[Row], repeat: int, judge: str) -> None:
    print(f"\nDagBag(dag_folder=FILE) construction, a fresh process per run, best of `runs` (at most {repeat}); "
          f"ratio = {judge} seconds / hand-written's\n")
    header = (f"{'N':>5}  {'variant':<14} {'DAGs':>5} {'runs':>4} {'seconds':>8} {'cpu s':>7} {'gc s':>6} "
              f"{'ms/DAG':>7} {'peak RSS MB':>11} {'+RSS MB':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for n in sorted({r.n for r in rows}):
        group = [r for r in rows if r.n == n]
        hand = next(r for r in group if r.variant == HAND).seconds(judge)
        for row in group:
            best = row.best
            print(f"{n:>5}  {row.variant:<14} {row.dags:>5} {len(row.runs):>4} {best['seconds']:>8.3f} "
                  f"{row.seconds('cpu'):>7.3f} {best['gc']:>6.3f} {best['seconds'] * 1000 / row.dags:>7.2f} "
                  f"{best['peak_rss_mb']:>11.0f} {best['peak_rss_mb'] - best['rss_before_mb']:>8.0f} "
                  f"{row.seconds(judge) / hand:>6.2f}")
        print()
    print("seconds: wall clock; cpu s: user + sys; gc s: CPU in the garbage collector (in the best wall run);\n"
          "+RSS MB: peak RSS growth during the DagBag (the baseline is the process after `import airflow`).")


@dataclass
class Target:
    name: str
    ok: bool | None  # None: not measured in this run
    other_ok: bool | None  # the verdict on the other measure (cpu when judging wall, and back)
    detail: str

    @property
    def verdict(self) -> str:
        return "SKIP" if self.ok is None else "PASS" if self.ok else "FAIL"


def targets(rows: list[Row], judge: str) -> list[Target]:
    """Each target is decided on `judge` seconds; the verdict on the other measure is shown beside it."""
    other = "cpu" if judge == "wall" else "wall"

    def get(n: int, variant: str) -> Row | None:
        return next((r for r in rows if r.n == n and r.variant == variant), None)

    def ratio_target(name: str, row: Row | None, base: Row | None, limit: float) -> Target:
        if row is None or base is None:
            return Target(name, None, None, "not run")
        ratio = {m: row.seconds(m) / base.seconds(m) for m in (judge, other)}
        return Target(name, ratio[judge] <= limit, ratio[other] <= limit,
                      f"{row.seconds(judge):.3f} s vs {base.seconds(judge):.3f} s = {ratio[judge]:.2f}x "
                      f"({other}: {row.seconds(other):.3f} s vs {base.seconds(other):.3f} s = {ratio[other]:.2f}x)")

    results = [
        ratio_target("pipespec (warm) within 1.1x of hand-written at N=100",
                     get(100, "pipespec warm"), get(100, HAND), 1.1),
        ratio_target("pipespec (warm) at most half of dag-factory's time at N=100",
                     get(100, "pipespec warm"), get(100, "dag-factory"), 0.5),
    ]
    results.append(ratio_target("pipespec (warm) within 1.1x of hand-written at N=1000",
                                get(1000, "pipespec warm"), get(1000, HAND), 1.1))
    ours, hand = get(1000, "pipespec warm"), get(1000, HAND)
    name = "dag-processor CPU per parse cycle at N=1000 (DagBag + serialization) within 1.1x of hand-written"
    if ours is None or hand is None:
        results.append(Target(name, None, None, "N=1000 not run"))
    else:
        cycle = {row.variant: min(r["cpu"] + r.get("serialize_cpu", 0.0) for r in row.runs) for row in (ours, hand)}
        ratio = cycle["pipespec warm"] / cycle[HAND]
        results.append(Target(name, ratio <= 1.1, ratio <= 1.1,
                              f"{cycle['pipespec warm']:.2f} vs {cycle[HAND]:.2f} CPU s per cycle = {ratio:.2f}x"))
    limit = IMPORT_TIMEOUT * WELL_INSIDE
    for variant in ("pipespec cold", "pipespec warm"):
        row = get(1000, variant)
        name = f"{variant} at N=1000 well inside dagbag_import_timeout {IMPORT_TIMEOUT:.0f} s (< {limit:.0f} s)"
        if row is None:
            results.append(Target(name, None, None, "N=1000 not run"))
        else:
            results.append(Target(name, row.seconds(judge) < limit, row.seconds(other) < limit,
                                  f"{row.seconds(judge):.3f} s = {row.seconds(judge) / IMPORT_TIMEOUT:.0%} of the "
                                  f"timeout ({other}: {row.seconds(other):.3f} s)"))
    return results


def print_targets(results: list[Target], judge: str) -> None:
    other = "cpu" if judge == "wall" else "wall"
    import results as recorded  # bench/results.py (this script's folder is on sys.path)

    print(f"\ntargets (judged on {judge} seconds, best of the runs)")
    for t in results:
        print(f"  {t.verdict}  {t.name}: {t.detail}")
        if t.ok is not None:
            ratio = _first_ratio(t.detail)
            limit = 0.5 if "half of dag-factory" in t.name else 1.1 if "1.1x" in t.name else None
            recorded.add(t.name, t.ok, t.detail, ratio if limit else None, limit, "lower")
    disagree = [t for t in results if t.ok is not None and t.ok != t.other_ok]
    for t in disagree:
        print(f"  note: on {other} seconds, `{t.name}` would be {'PASS' if t.other_ok else 'FAIL'}")
    if disagree:
        print("  (on a shared machine the cpu verdict is the steadier one; on an idle one they agree)")


def _first_ratio(detail: str) -> float | None:
    """The first `= 1.04x` in a target's detail."""
    import re

    found = re.search(r"= ([0-9.]+)x", detail)
    return float(found.group(1)) if found else None


def profile_pipespec(workload: Workload, top: int = 25) -> None:
    """cProfile of the pipespec loader (warm) in a fresh process; the project's own code first."""
    import pstats

    stats_file = workload.directory / "pipespec-warm.pstats"
    run_child(workload, "pipespec warm", profile=stats_file)
    stats = pstats.Stats(str(stats_file))
    print(f"\ncProfile: pipespec warm, N={workload.n} (DagBag construction; saved to {stats_file})")
    print(f"\n-- top {top} by cumulative time --")
    stats.sort_stats("cumulative").print_stats(top)
    print("-- pipespec's own functions (pipespec/, schemas/), by cumulative time --")
    stats.sort_stats("cumulative").print_stats(r"/(pipespec|schemas)/", top)
    print(f"-- top {top} by own time --")
    stats.sort_stats("tottime").print_stats(top)


def load_note(before: float) -> str:
    after = os.getloadavg()[0]
    note = f"load average {before:.2f} before, {after:.2f} after ({os.cpu_count()} cores)"
    if max(before, after) > (os.cpu_count() or 1) * 0.75:  # the bench itself keeps one core busy
        note += "\nthe machine was busy: wall times are inflated and noisy; compare cpu s (or use --judge cpu)"
    return note


def machine() -> str:
    from importlib.metadata import version

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"Airflow {version('apache-airflow')}, dag-factory {version('dag-factory')}")


def snapshot(target: Path) -> Path:
    """Copy the project's code (dags/, pipespec/, schemas/, tasklib/, pipelines/) as it is now, and
    compile it to .pyc. Every variant then runs the same code for the whole run, even when the
    working tree changes meanwhile (and a change would fail the structure check halfway)."""
    for package in CODE_PACKAGES:
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        compileall.compile_dir(target / package, quiet=1)
    return target


def describe_code() -> str:
    """The commit the snapshot was taken at, and which code folders had uncommitted changes."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.rstrip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    status = git("status", "--porcelain", "--", *CODE_PACKAGES).splitlines()
    changed = sorted({line[3:].split("/")[0] for line in status})
    return f"commit {commit}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


# =========================================================================== main

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=1 and 100 only")
    parser.add_argument("--sizes", type=lambda v: tuple(int(x) for x in v.split(",")),
                        help="comma-separated N values instead of 1,100,1000")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant and N; the best counts")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds per variant and N after which no further run is started (default 120)")
    parser.add_argument("--keep", type=Path, help="generate into this (new) directory and keep it")
    parser.add_argument("--profile", action="store_true", help="profile the pipespec loader at N=100 anyway")
    parser.add_argument("--judge", choices=("wall", "cpu"), default="wall", help="what the targets compare")
    parser.add_argument("--builtin-exporter", action="store_true",
                        help="use this file's dag-factory exporter even when pipespec.compiler.export_dagfactory exists")
    parser.add_argument("--no-dagfactory", action="store_true",
                        help="leave dag-factory out (and the target that compares with it)")
    parser.add_argument("--assert", dest="assert_", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the directory must be new or empty")

    global CODE
    tmp = tempfile.TemporaryDirectory(prefix="pipespec-dagbag-")
    root = (args.keep or Path(tmp.name)).resolve()
    root.mkdir(parents=True, exist_ok=True)
    code_note = describe_code()
    CODE = snapshot(root / "code")
    sys.path.insert(0, str(CODE))
    exporter, exporter_name = dagfactory_exporter(args.builtin_exporter)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows: list[Row] = []
    workloads: dict[int, Workload] = {}
    notes = []
    try:
        load_before = os.getloadavg()[0]
        for n in sizes:
            workload = workloads[n] = prepare(root, n, exporter)
            variants = tuple(v for v in VARIANTS if not (args.no_dagfactory and v == "dag-factory"))
            measured, edge_diffs = measure(workload, args.repeat, args.budget, variants)
            rows += measured
            if edge_diffs:
                notes.append(f"N={n}: dag-factory's edges differ from pipespec's in {len(edge_diffs)} DAGs "
                             f"(e.g. {edge_diffs[0]})")

        print(f"\nDagBag load benchmark on {machine()}\n{load_note(load_before)}")
        print(f"code: {code_note}, snapshot in {CODE}")
        print(f"dag-factory YAML exported by {exporter_name}")
        for note in notes:
            print(f"note: {note}")
        print_table(rows, args.repeat, args.judge)
        results = targets(rows, args.judge)
        print_targets(results, args.judge)
        pipespec_missed = any(t.ok is False or t.other_ok is False for t in results)
        if (pipespec_missed or args.profile) and 100 in workloads:
            profile_pipespec(workloads[100])
    finally:
        tmp.cleanup()
    return 1 if args.assert_ and any(t.ok is False for t in results) else 0


if __name__ == "__main__":
    sys.exit(main())
