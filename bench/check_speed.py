"""How fast is `pipespec check` on a repository of 1,000 specs?

What is measured (wall clock, best of --repeat runs, side by side in one run):

  python -c pass                 interpreter startup, for context
  import pipespec.schemas.check+repo      what every `pipespec check` pays before reading a file
  pipespec check DIR             the CLI as a subprocess on all 1,000 specs (+ the 3 templates)
  in-process check               pipespec.schemas.check.check_file over every file + pipespec.schemas.repo.check_repo
                                 (imports already done: the pure checking cost)
  pipespec check HALF            the CLI on the 500 self-contained specs only
  check-jsonschema HALF          check-jsonschema --schemafile schemas/pipeline.schema.json on
                                 the same 500 files; it cannot resolve `extends`, so the fair
                                 comparison is on the self-contained half

How: 1,000 distinct, valid specs are generated deterministically (fixed seed) into a
temporary directory, with templates/ copied from pipelines/templates/ so `extends`
works. Half extend a template (written as a minimal overlay, with `tags+`/`alerts+`
and shorthands such as `schedule: "@daily"`); half are self-contained, fully expanded
and written in the long form that the JSON Schema accepts. Every pipeline has its own
Asset URIs; some consume a "hub" pipeline's data or an external Asset, so the repo
rules (unique names, producers, cycles) have real work to do. Before timing, the
script checks that `pipespec check` passes on all of them and check-jsonschema on the
self-contained half.

Targets: under 2 s for 1,000 specs (`pipespec check DIR`), and `pipespec check` no
slower than check-jsonschema on the same files; judged on wall-clock time, or on CPU
time (user + sys, which other work on the machine inflates less) with --judge cpu.
The exit code is 0 regardless (this is a measurement); with --assert it is 1 when a
target is missed.

    .venv/bin/python bench/check_speed.py [--specs 1000] [--repeat 3] [--keep DIR] [--judge wall|cpu] [--assert]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipespec.schemas.check import check_file, discover  # noqa: E402
from pipespec.cli import main as pipespec_main  # noqa: E402
from pipespec.schemas.repo import check_repo  # noqa: E402
from pipespec.schemas.templates import resolve  # noqa: E402
from pipespec.schemas.yamlload import load_file  # noqa: E402

BIN = REPO / ".venv" / "bin"
PYTHON = BIN / "python"
PIPESPEC = BIN / "pipespec"
CHECK_JSONSCHEMA = BIN / "check-jsonschema"
SCHEMA = REPO / "schemas" / "pipeline.schema.json"
TEMPLATES = REPO / "pipelines" / "templates"

TARGET_SECONDS = 2.0
SEED = 20240601

# --------------------------------------------------------------------------- generation

DOMAINS = ["churn", "feedback", "fraud", "demand", "xray", "content", "intents", "reviews", "pricing",
           "tickets", "ads", "search", "risk", "support", "supply", "credit", "spam", "sentiment"]
TEAMS = ["ml-growth", "ml-support", "ml-risk", "ml-imaging", "ml-genai", "ml-forecasting", "ml-search"]
CRONS = ["@hourly", "@daily", "@weekly", "*/15 * * * *", "*/30 * * * *", "0 3 * * *", "15 2 * * mon-fri",
         "0 */6 * * *", "5 4 1 * *"]

# model type -> (short name, label, features, params, metrics, (low, high) floor range)
MODELS = {
    "keras_text_classifier": ("text", "label", ["text"], {"epochs": 5, "max_tokens": 20000, "seed": 1},
                              ["f1_macro", "f1_weighted", "accuracy", "precision", "recall"], (0.5, 0.9)),
    "keras_tabular_classifier": ("tab", "label", ["f0", "f1", "f2", "f3"],
                                 {"epochs": 10, "hidden_units": [32, 16], "seed": 7},
                                 ["roc_auc", "accuracy", "f1"], (0.6, 0.95)),
    "keras_tabular_regressor": ("reg", "demand", ["f0", "f1", "f2"], {"epochs": 20, "seed": 11},
                                ["rmse", "mae"], (5.0, 50.0)),
    "keras_image_classifier": ("img", "label", ["image"], {"epochs": 8, "image_size": 64, "seed": 1},
                               ["roc_auc", "accuracy"], (0.7, 0.95)),
    "llm_finetune": ("llm", "output", ["input"],
                     {"base_model": "mistralai/Mistral-7B-Instruct-v0.1", "epochs": 3, "lora_rank": 8},
                     ["exact_match", "slot_f1"], (0.4, 0.8)),
}
# The template an extending spec of this model type builds on.
TEMPLATE_FOR = {"keras_text_classifier": "text_classifier.yaml", "keras_tabular_classifier": "tabular.yaml"}
STAGES = [["full"], ["shadow", "full"], [{"canary": 10}, {"canary": 50}, "full"], ["shadow", "approval", "full"],
          ["shadow", {"canary": {"percent": 10, "guard": {"max_drop": 0.02}}}, "approval", "full"]]
BASE_RETRIES = {"count": 3, "delay": "2m", "backoff": "exponential", "max_delay": "30m"}
BASE_ALERTS = [{"on": ["failure"], "slack": {"channel": "#ml-alerts", "conn_id": "slack_default"}}]


def bucket(i: int) -> str:
    return f"s3://bench-{i:04d}"


def hub_of(i: int) -> int:
    """Pipelines 0, 1, 10, 11, 20, ... are hubs whose curated data a few others also train on.
    A hub has the same parity as its consumers, so each half (extending: even, self-contained:
    odd) is a repository of its own and passes the repo rules when checked alone."""
    return i - i % 10 + i % 2


def make_sources(i: int, rng: random.Random) -> list[dict]:
    sources = []
    for k in range(rng.randint(1, 4)):
        kind, name = rng.choice(["local", "s3", "sql"]), f"src{k}_{rng.choice(DOMAINS)}"
        fmt = rng.choice(["jsonl", "csv", "parquet"])
        if kind == "local":
            source = {"name": name, "type": "local", "path": f"data/p{i:04d}/{name}/", "format": fmt}
        elif kind == "s3":
            source = {"name": name, "type": "s3", "uri": f"{bucket(i)}/raw/{name}/", "format": fmt,
                      "only_new": rng.random() < 0.5}
        else:
            source = {"name": name, "type": "sql", "conn_id": f"db_{rng.randint(1, 9)}",
                      "query": f"select id, f0, f1, text, label from events_{i} where day = '{{{{ data_interval_start }}}}'"}
        if rng.random() < 0.2:
            source["timeout"] = rng.choice(["90s", "10m", "1h30m"])
        sources.append(source)
    return sources


def make_transforms(rng: random.Random, features: list[str], label: str) -> list[dict]:
    column = features[0]
    pool = [{"dedupe": {"key": ["id"]}}, {"drop_empty": [column, label]}, {"select": ["id", *features, label]},
            {"rename": {"body": column}}, {"filter": f"len({column}) > {rng.randint(1, 30)}"},
            {"normalize_text": [column]}, {"redact_pii": [column]},
            {"sample": {"fraction": rng.choice([0.1, 0.25, 0.5]), "seed": rng.randint(0, 99)}}]
    return rng.sample(pool, rng.randint(0, 4))


def make_data(i: int, rng: random.Random, model: str) -> dict:
    _, label, features, *_ = MODELS[model]
    sources = make_sources(i, rng)
    data: dict = {"schedule": rng.choice(CRONS), "sources": sources,
                  "transforms": make_transforms(rng, features, label)}
    if len(sources) >= 2 and rng.random() < 0.3:
        data["join"] = {"type": rng.choice(["inner", "left"]), "on": ["id"]}
    else:
        data["join"] = "union"
    data["threshold"] = {"min_records": rng.choice([0, 100, 200, 1000]), "min_new_records": rng.choice([0, 10, 100])}
    if rng.random() < 0.4:
        data["quality"] = {"required_columns": [*features, label], "max_null_rate": {features[0]: 0.05}}
    if model.startswith("keras_tabular") and rng.random() < 0.5:
        data["drift"] = {"method": rng.choice(["psi", "ks"]), "threshold": 0.2, "columns": features[:2]}
    data["publishes"] = f"{bucket(i)}/curated/"
    return data


def make_compute(i: int, rng: random.Random, model: str) -> dict:
    backend = "anyscale" if model == "llm_finetune" else rng.choice(["local", "local", "kubernetes", "anyscale"])
    if backend == "kubernetes":
        return {"backend": "kubernetes", "image": f"ghcr.io/example/train-{i:04d}:1.{i % 7}.0",
                "namespace": "ml-training", "resources": {"cpu": "4", "memory": "16Gi", "gpu": i % 2}}
    if backend == "anyscale":
        return {"backend": "anyscale", "conn_id": "anyscale_conn", "compute_config": f"cfg-{i % 5}",
                "working_dir": f"{bucket(i)}/workdir/", "timeout": "6h"}
    return {"backend": "local"}


def make_train(i: int, rng: random.Random, name: str, model: str, data: dict) -> dict:
    _, label, features, params, *_ = MODELS[model]
    params = dict(params, seed=rng.randint(0, 999)) if rng.random() < 0.5 else dict(params)
    train: dict = {"model": {"type": model, "label": label, "features": features, "params": params},
                   "compute": make_compute(i, rng, model)}
    roll = rng.random()
    if roll < 0.2 and hub_of(i) != i:  # also retrain when the hub pipeline publishes new data
        train["schedule"] = {"assets": {"any": [data["publishes"], f"{bucket(hub_of(i))}/curated/"]},
                             "or_cron": "@weekly"}
    elif roll < 0.3:  # both our data and an external reference set must have changed
        train["schedule"] = {"assets": {"all": [data["publishes"], f"s3://reference-{i % 3}/style/"]}}
    if rng.random() < 0.3:
        train["publishes"] = f"model://{name}"
    return train


def make_rollout(i: int, rng: random.Random, compute: dict) -> dict:
    rollout: dict = {"policy": "champion_challenger", "min_improvement": rng.choice([0.0, 0.01, 0.02]),
                     "stages": copy.deepcopy(rng.choice(STAGES))}
    if compute["backend"] == "anyscale" and rng.random() < 0.5:
        # A non-LLM model on an Anyscale Service must say which Ray Serve applications to deploy.
        rollout["target"] = {"type": "anyscale_service", "name": f"svc-{i:04d}", "conn_id": "anyscale_conn",
                             "applications": [{"name": "classifier", "import_path": "serve_app:app"}]}
    elif compute["backend"] != "anyscale" and rng.random() < 0.3:
        rollout["target"] = {"type": "kubernetes", "deployment": f"serve-{i:04d}", "namespace": "ml-serving"}
    else:
        rollout["target"] = {"type": "registry_alias"}
    return rollout


def make_alerts(rng: random.Random, team: str) -> list[dict]:
    alerts = copy.deepcopy(BASE_ALERTS) if rng.random() < 0.7 else []
    if rng.random() < 0.6:
        alerts.append({"on": ["rejected", "gate_blocked"], "slack": {"channel": "#ml-alerts"}})
    if rng.random() < 0.5 or not alerts:
        alerts.append({"on": rng.sample(["failure", "retry", "promoted", "rolled_back"], 2),
                       "email": [f"{team}@example.com"]})
    return alerts


def make_retries(rng: random.Random) -> dict:
    if rng.random() < 0.6:
        return dict(BASE_RETRIES)
    retries: dict = {"count": rng.randint(0, 5), "delay": rng.choice(["30s", "1m", "5m"]), "backoff": "constant"}
    if rng.random() < 0.4:
        retries["overrides"] = {"data": {"count": 6, "delay": "30s"}, "train": {"count": 1}}
    return retries


def blueprint(i: int, rng: random.Random) -> dict:
    """One valid pipeline, as a person would write it (shorthands allowed)."""
    model = rng.choice(list(MODELS))
    short, _, _, _, metrics, (low, high) = MODELS[model]
    name = f"{rng.choice(DOMAINS)}_{short}_{i:04d}"
    team = rng.choice(TEAMS)
    data = make_data(i, rng, model)
    train = make_train(i, rng, name, model, data)
    spec: dict = {"pipeline": name,
                  "description": f"Pipeline {i}: {' '.join(rng.sample(DOMAINS, rng.randint(2, 8)))}.",
                  "owner": team, "tags": ["pipespec", short, rng.choice(DOMAINS)][: rng.randint(1, 3)]}
    if "schedule" in train and "all" in train["schedule"]["assets"]:
        spec["external_assets"] = [f"s3://reference-{i % 3}/style/"]
    spec["data"] = data
    spec["train"] = train
    spec["evaluate"] = {"metric": rng.choice(metrics), "floor": round(rng.uniform(low, high), 2)}
    if rng.random() < 0.3:
        spec["evaluate"]["holdout"] = f"{bucket(i)}/holdout/"
    spec["rollout"] = make_rollout(i, rng, train["compute"])
    spec["retries"] = make_retries(rng)
    spec["alerts"] = make_alerts(rng, team)
    if rng.random() < 0.6 or model == "keras_tabular_classifier":
        inference = {"input": f"{bucket(i)}/incoming/", "output": f"{bucket(i)}/predictions/",
                     "shard_size": rng.choice([500, 5000, 10000])}
        if rng.random() < 0.5:
            inference["schedule"] = rng.choice(CRONS)
        spec["inference"] = inference
    return spec


def longhand(spec: dict) -> dict:
    """The same spec with every shorthand expanded, as the JSON Schema expects it."""
    spec = copy.deepcopy(spec)
    for section in ("data", "train", "inference"):
        body = spec.get(section) or {}
        if isinstance(body.get("schedule"), str):
            body["schedule"] = {"cron": body["schedule"]}
    data = spec.get("data")
    if data:
        if isinstance(data.get("join"), str):
            data["join"] = {"type": data["join"]}
        for transform in data.get("transforms", []):
            if "normalize_text" in transform:
                transform["normalize_text"] = {"columns": transform["normalize_text"]}
    rollout = spec.get("rollout")
    if rollout:
        rollout["stages"] = [_long_stage(s) for s in rollout["stages"]]
    for alert in spec.get("alerts", []):
        if isinstance(alert.get("email"), list):
            alert["email"] = {"to": alert["email"]}
    return spec


def _long_stage(stage: str | dict) -> dict:
    if isinstance(stage, str):
        return {stage: None}
    if isinstance(stage.get("canary"), int):
        return {"canary": {"percent": stage["canary"]}}
    return stage


def overlay(parent: dict, child: dict) -> dict:
    """The smallest `extends` body that turns `parent` into `child` under pipespec's merge rules:
    equal values are left out, mappings recurse, a list that only grows becomes `key+`, and an
    inherited key the child lacks becomes `key: null`."""
    out: dict = {}
    for key, value in child.items():
        inherited = parent.get(key)
        if inherited == value:
            continue
        if isinstance(inherited, dict) and isinstance(value, dict):
            out[key] = overlay(inherited, value)
        elif (isinstance(inherited, list) and isinstance(value, list) and len(value) > len(inherited)
              and value[: len(inherited)] == inherited):
            out[f"{key}+"] = value[len(inherited):]
        else:
            out[key] = value
    out.update({key: None for key in parent if key not in child})
    return out


def resolved_templates(directory: Path) -> dict[str, dict]:
    """Each template merged over its own parents, as plain data."""
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        merged, _ = resolve(load_file(path), path, str)
        out[path.name] = merged.to_plain()
    return out


def dump(spec: dict, header: str) -> str:
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)


def generate(directory: Path, count: int, seed: int = SEED) -> tuple[list[Path], list[Path]]:
    """Write `count` specs; returns (extending, self_contained) file lists."""
    shutil.copytree(TEMPLATES, directory / "templates")
    templates = resolved_templates(directory / "templates")
    rng = random.Random(seed)
    extending, self_contained = [], []
    for i in range(count):
        spec = blueprint(i, rng)
        path = directory / f"{spec['pipeline']}.yaml"
        if i % 2 == 0:
            template = TEMPLATE_FOR.get(spec["train"]["model"]["type"], "base.yaml")
            body = {"pipeline": spec["pipeline"], "extends": f"templates/{template}",
                    **overlay(templates[template], spec)}
            path.write_text(dump(body, f"# generated by bench/check_speed.py; extends {template}\n"))
            extending.append(path)
        else:
            path.write_text(dump(longhand(spec), "# generated by bench/check_speed.py; self-contained\n"))
            self_contained.append(path)
    return extending, self_contained


# --------------------------------------------------------------------------- verification

def verify(directory: Path, self_contained: list[Path]) -> None:
    """Refuse to time anything that does not pass: a failing check is not a fair timing."""
    code = pipespec_main(["check", "--format", "github", str(directory)])
    if code != 0:
        sys.exit(f"bench: generated specs do not pass `pipespec check` (exit {code}); see above")
    result = run([str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), *map(str, self_contained)], check=False)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        sys.exit("bench: self-contained specs do not pass check-jsonschema; see above")


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:3])} ... exited {result.returncode}\n{result.stdout[-2000:]}"
                 f"{result.stderr[-2000:]}")
    return result


# --------------------------------------------------------------------------- timing

@dataclass
class Row:
    tool: str
    files: int | None
    seconds: float  # best wall-clock time
    cpu: float  # best CPU time (user + sys, this process and its children)
    baseline: bool = False  # check-jsonschema: the row ratios are taken against


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best_of(repeat: int, action: Callable[[], object]) -> tuple[float, float]:
    """Best wall and best CPU seconds over `repeat` runs. CPU time barely moves when other
    work shares the machine; wall time is what a user waits for."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()  # start every run from the same heap, not the last run's garbage
        cpu, start = cpu_seconds(), time.perf_counter()
        action()
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu)
    return min(walls), min(cpus)


def in_process(paths: list[Path]) -> Callable[[], object]:
    def action() -> object:
        files, _ = discover(paths)
        checked = [check_file(f) for f in files]
        problems = [d for c in checked for d in c.diagnostics] + check_repo(checked)
        assert not problems, problems[:3]
        return checked
    return action


def subprocess_action(argv: list[str]) -> Callable[[], object]:
    return lambda: run(argv)


def measure(directory: Path, self_contained: list[Path], repeat: int) -> list[Row]:
    all_files = len(discover([directory])[0])
    half = [str(p) for p in self_contained]
    cases = [
        ("python -c pass (startup)", None, subprocess_action([str(PYTHON), "-c", "pass"]), False),
        ("import pipespec.schemas.check+repo", None,
         subprocess_action([str(PYTHON), "-c", "import pipespec.schemas.check, pipespec.schemas.repo"]), False),
        ("pipespec check DIR", all_files, subprocess_action([str(PIPESPEC), "check", str(directory)]), False),
        ("in-process check_file+repo", all_files, in_process([directory]), False),
        ("pipespec check HALF", len(half), subprocess_action([str(PIPESPEC), "check", *half]), False),
        ("in-process HALF", len(half), in_process([Path(p) for p in half]), False),
        ("check-jsonschema HALF", len(half),
         subprocess_action([str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), *half]), True),
    ]
    rows = []
    for tool, files, action, baseline in cases:
        rows.append(Row(tool, files, *best_of(repeat, action), baseline))
        print(f"  measured {tool}: {rows[-1].seconds:.3f} s wall, {rows[-1].cpu:.3f} s cpu", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- report

def print_table(rows: list[Row], repeat: int) -> None:
    base = next(r for r in rows if r.baseline)
    base_ms = base.seconds * 1000 / base.files
    print(f"\nbest of {repeat}; ratio = ms per spec / check-jsonschema's ms per spec (lower is faster);"
          " cpu = user+sys\n")
    print(f"{'tool':<28} {'files':>5} {'total s':>8} {'ms/spec':>8} {'ratio':>6} {'cpu s':>7}")
    print("-" * 67)
    for row in rows:
        if row.files:
            ms = row.seconds * 1000 / row.files
            print(f"{row.tool:<28} {row.files:>5} {row.seconds:>8.3f} {ms:>8.2f} {ms / base_ms:>6.2f} {row.cpu:>7.3f}")
        else:
            print(f"{row.tool:<28} {'-':>5} {row.seconds:>8.3f} {'-':>8} {'-':>6} {row.cpu:>7.3f}")


def targets(rows: list[Row], specs: int, judge: str = "wall") -> list[tuple[str, bool, str]]:
    """Targets are judged on wall time, the time a user waits (or on CPU time with --judge cpu)."""
    by_tool = {r.tool: r for r in rows}
    full, half, base = by_tool["pipespec check DIR"], by_tool["pipespec check HALF"], by_tool["check-jsonschema HALF"]
    seconds = (lambda r: r.cpu) if judge == "cpu" else (lambda r: r.seconds)
    # With --specs other than 1,000, project: the fixed start-up cost once, the rest per spec.
    fixed = seconds(by_tool["import pipespec.schemas.check+repo"])
    scaled = fixed + (seconds(full) - fixed) * 1000 / specs
    note = f" {judge}" + ("" if specs == 1000 else f" (projected from {specs} specs)")
    return [
        (f"pipespec check on 1,000 specs < {TARGET_SECONDS:.0f} s", scaled < TARGET_SECONDS, f"{scaled:.3f} s{note}",
         scaled, TARGET_SECONDS, "lower"),
        ("pipespec check <= check-jsonschema (same files)", seconds(half) <= seconds(base),
         f"{seconds(half):.3f} s vs {seconds(base):.3f} s {judge} ({seconds(half) / seconds(base):.2f}x)",
         seconds(half) / seconds(base), 1.0, "lower"),
    ]


def print_targets(results: list[tuple]) -> None:
    """Print each (target, ok, detail[, value, goal, better]) and record it for run_all's report."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import results as recorded  # bench/results.py

    print("\ntargets")
    for name, ok, detail, *numbers in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
        recorded.add(name, ok, detail, *numbers)


def load_note(before: float) -> str:
    """Other work on the machine inflates wall times (not CPU times); say so."""
    after = os.getloadavg()[0]
    busy = max(before, after) > (os.cpu_count() or 1) * 0.5
    note = f"load average {before:.2f} before, {after:.2f} after"
    return note + ("\nthe machine was busy: wall times are inflated, compare cpu s" if busy else "")


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"libyaml {'yes' if getattr(yaml, '__with_libyaml__', False) else 'no'}")


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=1000, help="how many specs to generate (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument("--keep", type=Path, help="generate into this (new) directory and keep it")
    parser.add_argument("--judge", choices=("wall", "cpu"), default="wall",
                        help="what the targets compare (default wall; cpu is steadier on a busy machine)")
    parser.add_argument("--assert", dest="assert_", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pipespec-bench-") as tmp:
        directory = args.keep or Path(tmp)
        if args.keep and args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: the directory must be new or empty")
        directory.mkdir(parents=True, exist_ok=True)
        extending, self_contained = generate(directory, args.specs)
        print(f"generated {len(extending)} extending + {len(self_contained)} self-contained specs in {directory}",
              file=sys.stderr)
        verify(directory, self_contained)
        load_before = os.getloadavg()[0]
        rows = measure(directory, self_contained, args.repeat)

    print(f"\npipespec check benchmark on {machine()}\n{load_note(load_before)}")
    print_table(rows, args.repeat)
    results = targets(rows, args.specs, args.judge)
    print_targets(results)
    return 1 if args.assert_ and not all(ok for _, ok, *_ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
