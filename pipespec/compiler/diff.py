"""`pipespec diff`: what a change to the specs does to the compiled DAGs.

Compares IR, not YAML, so a reviewer sees the effect of a template edit on
every pipeline that extends it, and a reformat that changes nothing shows
nothing. Output is plain lines grouped per DAG, in pipeline then DAG order.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipespec.schemas.check import check_file, discover
from pipespec.compiler.compile import compile_checked
from pipespec.compiler.graph import describe_mapping, describe_schedule, item_label
from pipespec.compiler.ir import Dag, Pipeline, Retry, Task

# Params that differ between checkouts without changing behaviour.
NOISY_PARAMS = {"spec_dir", "spec_hash"}


# --- comparing IR ------------------------------------------------------------------

def diff_pipelines(old: dict[str, Pipeline], new: dict[str, Pipeline]) -> list[str]:
    """Lines describing every behavioural change; [] when the DAGs are the same."""
    old_dags, new_dags = _dags(old), _dags(new)
    # Pipelines by name; inside one, its DAGs in compiled order, removed ones last.
    order = dict.fromkeys(d.dag_id for name in sorted({*old, *new}) for side in (new, old) if name in side
                          for d in side[name].dags)
    lines: list[str] = []
    for dag_id in order:
        before, after = old_dags.get(dag_id), new_dags.get(dag_id)
        if before is None:
            assert after is not None
            lines.append(f"{dag_id}: DAG added ({describe_schedule(after.schedule)}; "
                         f"tasks: {', '.join(t.task_id for t in after.tasks)})")
        elif after is None:
            lines.append(f"{dag_id}: DAG removed")
        elif changes := _dag_changes(before, after):
            lines.append(f"{dag_id}:")
            lines += [f"  {change}" for change in changes]
    return lines


def _dags(pipelines: dict[str, Pipeline]) -> dict[str, Dag]:
    return {dag.dag_id: dag for pipeline in pipelines.values() for dag in pipeline.dags}


def _dag_changes(old: Dag, new: Dag) -> list[str]:
    out = []
    if old.schedule != new.schedule:
        out.append(f"schedule: {describe_schedule(old.schedule)} → {describe_schedule(new.schedule)}")
    if old.retry != new.retry:
        out.append(f"retries: {_retry_change(old.retry, new.retry)}")
    old_tasks = {t.task_id: t for t in old.tasks}
    new_tasks = {t.task_id: t for t in new.tasks}
    out += [f"task removed: {t}" for t in old_tasks if t not in new_tasks]
    out += [f"task added: {t}" for t in new_tasks if t not in old_tasks]
    old_edges, new_edges = _edges(old), _edges(new)
    out += [f"edge removed: {a} → {b}" for a, b in old_edges if (a, b) not in new_edges]
    out += [f"edge added: {a} → {b}" for a, b in new_edges if (a, b) not in old_edges]
    # The same change on many tasks (a section's retries) reads as one line naming them all.
    grouped: dict[str, list[str]] = {}
    for task_id, task in new_tasks.items():
        if task_id in old_tasks:
            for change in _task_changes(old, old_tasks[task_id], new, task):
                grouped.setdefault(change, []).append(task_id)
    out += [f"{', '.join(ids)}: {change}" for change, ids in grouped.items()]
    return out


def _edges(dag: Dag) -> list[tuple[str, str]]:
    return [(up, t.task_id) for t in dag.tasks for up in t.upstream]


def _task_changes(old_dag: Dag, old: Task, new_dag: Dag, new: Task) -> Iterator[str]:
    if old.kind != new.kind:
        yield f"kind {old.kind} → {new.kind}"
    old_retry, new_retry = old.retry or old_dag.retry, new.retry or new_dag.retry
    # A task that follows its DAG's default both times is covered by the DAG's `retries:` line.
    if old_retry != new_retry and not (old_retry == old_dag.retry and new_retry == new_dag.retry):
        yield f"retries {_retry_change(old_retry, new_retry)}"
    if old.trigger_rule != new.trigger_rule:
        yield f"trigger rule {old.trigger_rule} → {new.trigger_rule}"
    yield from _mapping_changes(old, new)
    for decision in dict.fromkeys([*old.branches, *new.branches]):
        before, after = old.branches.get(decision), new.branches.get(decision)
        if before != after:
            yield f"branch {decision}: {before or '(none)'} → {after or '(none)'}"
    if old.outlets != new.outlets:
        yield f"outlets {', '.join(old.outlets) or '(none)'} → {', '.join(new.outlets) or '(none)'}"
    for path, before, after in _dotted_diff(_quiet(old.params), _quiet(new.params)):
        yield f"{path} {_show(before)} → {_show(after)}"


def _mapping_changes(old: Task, new: Task) -> Iterator[str]:
    before, after = describe_mapping(old.mapping), describe_mapping(new.mapping)
    if before != after:
        yield f"{before} → {after}"
    if old.mapping and new.mapping and old.mapping.over is None and new.mapping.over is None:
        # Same item names, changed contents (a source's path or query): report per item.
        key = new.mapping.label
        old_items = {item_label(i, key): i for i in old.mapping.items}
        for item in new.mapping.items:
            name = item_label(item, key)
            if name in old_items:
                for path, a, b in _dotted_diff(old_items[name], item, f"{new.mapping.arg}s.{name}"):
                    yield f"{path} {_show(a)} → {_show(b)}"


def _quiet(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in NOISY_PARAMS}


_UNSET = object()


def _dotted_diff(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted.path, old, new) for each changed leaf; lists compare whole, as they read in YAML."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            yield from _dotted_diff(old.get(key, _UNSET), new.get(key, _UNSET), f"{path}.{key}" if path else str(key))
    elif old != new:
        yield path, old, new


def _show(value: Any) -> str:
    if value is _UNSET:
        return "(unset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _retry_change(old: Retry, new: Retry) -> str:
    fields = [("count", old.count, new.count), ("delay", _duration(old.delay_s), _duration(new.delay_s)),
              ("backoff", _backoff(old), _backoff(new)),
              ("max_delay", _duration(old.max_delay_s), _duration(new.max_delay_s))]
    return ", ".join(f"{name} {a} → {b}" for name, a, b in fields if a != b)


def _backoff(retry: Retry) -> str:
    return "exponential" if retry.exponential else "constant"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "none"
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


# --- loading specs at a git ref ---------------------------------------------------

class GitRefError(Exception):
    """The ref (or the repository) cannot be read; the CLI exits 2 with this message."""


class Snapshot(dict[str, Pipeline]):
    """Pipelines by name, plus `errors`: one line per spec that does not check at that ref.

    A broken spec must not stop the review of the others, so its problem is
    carried here instead of raised; `diff_refs` leaves such pipelines out of
    the comparison so they do not show up as removed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}  # file stem -> line


def repo_root(start: Path) -> Path:
    """The top of the git repository holding `start`."""
    return Path(_git(start, "rev-parse", "--show-toplevel", what=f"not a git repository: {start}").decode().strip())


def load_at_ref(repo_root: Path, ref: str | None, paths: list[str]) -> Snapshot:
    """Check and compile the specs under `paths` (repo-relative) as they are at `ref`.

    `ref=None` reads the working tree. Templates are skipped as specs but
    still resolved by `extends`, so `paths` should include their directory.
    """
    if ref is None:
        return _load(repo_root, paths, "in the working tree")
    if ref.startswith("-"):  # git would read it as an option (`--output=...`)
        raise GitRefError(f"unknown git ref `{ref}`")
    _git(repo_root, "rev-parse", "--git-dir", what=f"not a git repository: {repo_root}")
    _git(repo_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=f"unknown git ref `{ref}`")
    present = [p for p in paths if _git(repo_root, "ls-tree", "--name-only", ref, "--", p).strip()]
    with tempfile.TemporaryDirectory(prefix="pipespec-diff-") as tmp:
        if present:
            archive = _git(repo_root, "archive", "--format=tar", ref, "--", *present)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                # The "data" filter refuses links and paths that leave tmp (Python 3.11.4+).
                tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        return _load(Path(tmp), paths, f"at {ref}")


def _load(root: Path, paths: list[str], where: str) -> Snapshot:
    snapshot = Snapshot()
    files, _ = discover([root / p for p in paths if (root / p).exists()])
    for file in files:
        checked = check_file(file)
        if checked.is_template:
            continue
        if checked.spec is None or not checked.ok:
            errors = sum(d.severity == "error" for d in checked.diagnostics)
            plural = "" if errors == 1 else "s"
            snapshot.errors[file.stem] = f"{file.stem}: spec has errors {where} ({errors} diagnostic{plural})"
            continue
        pipeline = compile_checked(checked)
        snapshot[pipeline.name] = pipeline
    return snapshot


def _git(cwd: Path, *args: str, what: str | None = None) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], stdin=subprocess.DEVNULL, capture_output=True,
                              check=False)
    except FileNotFoundError as exc:
        raise GitRefError("git is not installed") from exc
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise GitRefError(what or f"git {args[0]} failed: {detail}")
    return done.stdout


def diff_refs(repo_root: Path, base: str, head: str | None = None, paths: list[str] | None = None) -> list[str]:
    """What `pipespec diff BASE [HEAD]` prints: spec errors first, then the DAG changes."""
    paths = paths or ["pipelines"]
    old, new = load_at_ref(repo_root, base, paths), load_at_ref(repo_root, head, paths)
    broken = {*old.errors, *new.errors}
    lines = [*old.errors.values(), *new.errors.values()]

    def keep(side: Snapshot) -> dict[str, Pipeline]:
        # A spec broken on either side is left out: its DAGs did not really disappear.
        return {name: p for name, p in side.items() if name not in broken and Path(p.spec_file).stem not in broken}

    return lines + (diff_pipelines(keep(old), keep(new)) or ["no changes to compiled DAGs"])
