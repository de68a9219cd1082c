"""Compile every spec under a directory into IR, with a content-hash cache.

Used by the DAG loader on every parse, so it is Airflow-free and cheap: a
cached entry is reused when the spec, every template it read, the policy
file and the pipespec version are unchanged (hashes of file bytes; no YAML
parsing).

The cache directory is not trusted more than the specs: an entry is found by
the spec's own digest, must list the spec and only regular files inside its
spec tree, each with a matching digest, and must hold a well-formed IR for
that very spec file. Anything else is a cache miss that recompiles, never a
crash and never another spec's pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipespec import __version__
from pipespec.schemas.diagnostics import Diagnostic
from pipespec.schemas.discover import TEMPLATES_DIR, discover, templates_home
from pipespec.compiler.ir import IR_VERSION, Pipeline
from pipespec.schemas.policy_location import policy_location
from pipespec.schemas.producers import clashes
from pipespec.schemas.shipped import shipped_root
from pipespec.schemas.yamlload import MAX_BYTES



@dataclass
class BrokenSpec:
    """A spec that did not compile, with why."""

    file: str
    diagnostics: list[Diagnostic]


@dataclass
class RepoBuild:
    """What a directory of specs compiles to: pipelines, and the specs that broke."""

    pipelines: list[Pipeline] = field(default_factory=list)
    broken: list[BrokenSpec] = field(default_factory=list)


def build_repo(root: Path, cache_dir: Path | None = None) -> RepoBuild:
    """Compile every spec under `root` (templates excepted), from the cache where it is current."""
    files, problems = discover([root])
    result = RepoBuild(broken=[BrokenSpec(d.file, [d]) for d in problems])
    seen = _Seen()
    compiled: list[Pipeline] = []
    for file in files:
        if file.parent.name == TEMPLATES_DIR:
            continue
        try:
            pipeline, diagnostics = _compile_cached(file, root, cache_dir, seen)
        except Exception as exc:  # noqa: BLE001 - one spec that breaks the compiler must not hide the others
            pipeline, diagnostics = None, [Diagnostic(
                str(file), 1, 1, "", f"pipespec could not compile this spec: {type(exc).__name__}: {str(exc)[:300]}",
                "this is a pipespec bug, please report it; the other pipelines still load", code="internal")]
        if pipeline is None:
            result.broken.append(BrokenSpec(diagnostics[0].file if diagnostics else str(file), diagnostics))
        else:
            compiled.append(pipeline)
    contested = _contested(compiled)
    for pipeline in compiled:
        if pipeline.spec_file in contested:
            result.broken.append(BrokenSpec(pipeline.spec_file, contested[pipeline.spec_file]))
        else:
            result.pipelines.append(pipeline)
    return result


@dataclass
class _Seen:
    """What one parse learned about the files it read, for its other specs (many share a template and a
    folder): each file is hashed once, and each listed path judged once (path arithmetic and realpath
    per entry were about a quarter of a warm parse's cache reads)."""

    digests: dict[str, str] = field(default_factory=dict)
    homes: dict[Path, Path | None] = field(default_factory=dict)  # spec folder -> its templates_home
    allowed: dict[tuple[str, Path | None], bool] = field(default_factory=dict)  # (listed file, home) -> inside
    shipped: Path | None = None

    def home(self, spec: Path) -> Path | None:
        """templates_home of a real spec path: its parents alone decide it."""
        if spec.parent not in self.homes:
            self.homes[spec.parent] = templates_home(spec)
        return self.homes[spec.parent]

    def inside(self, name: str, home: Path | None) -> bool:
        """`name` is a real path inside `home` or the shipped templates."""
        key = (name, home)
        if key not in self.allowed:
            if self.shipped is None:
                self.shipped = shipped_root().resolve()
            path = Path(name)
            inside = (home is not None and path.is_relative_to(home)) or path.is_relative_to(self.shipped)
            self.allowed[key] = inside and os.path.realpath(name) == name
        return self.allowed[key]


def _contested(pipelines: list[Pipeline]) -> dict[str, list[Diagnostic]]:
    """Pipelines that share a name (DAG ids) or whose Assets coincide or nest (pipespec.schemas.producers).
    None of them loads: whichever spec came first, a newcomer must not take over the DAGs or the
    data of a pipeline that was there before (`check` reports both sides, so CI stops the change)."""
    found: dict[str, list[Diagnostic]] = {}

    def contest(pipeline: Pipeline, message: str, hint: str) -> None:
        found.setdefault(pipeline.spec_file, []).append(
            Diagnostic(pipeline.spec_file, 1, 1, "", message, hint, code="repo"))

    by_name: dict[str, list[Pipeline]] = {}
    for pipeline in pipelines:
        by_name.setdefault(pipeline.name, []).append(pipeline)
    for name, same in by_name.items():
        for pipeline in same if len(same) > 1 else ():
            others = ", ".join(p.spec_file for p in same if p is not pipeline)
            contest(pipeline, f"pipeline name `{name}` is also used by {others}; neither is loaded",
                    "pipeline names become DAG ids: choose a unique name")
    outlets = [(uri, p, p.spec_file) for p in pipelines
               for uri in {outlet for dag in p.dags for task in dag.tasks for outlet in task.outlets}]
    for clash in clashes(outlets):
        relation = "is also published by" if clash.same else "nests with"
        for pipeline, other, uri, other_uri in ((clash.owner, clash.other, clash.uri, clash.other_uri),
                                                (clash.other, clash.owner, clash.other_uri, clash.uri)):
            contest(pipeline, f"the Asset `{uri}` {relation} `{other_uri}` of {other.spec_file}; neither is loaded",
                    "one producer per Asset, none inside another's: publish to a URI of your own")
    return found


def _compile_cached(file: Path, root: Path, cache_dir: Path | None,
                    seen: _Seen) -> tuple[Pipeline | None, list[Diagnostic]]:
    real = file.resolve()
    digests = seen.digests
    entry = _cache_path(cache_dir, real, digests) if cache_dir else None
    if entry is not None:
        cached = _read_entry(entry, real, seen)
        if cached is not None:
            return cached, []
    # Only a cache miss pays for the checker and the models (pydantic): a warm parse never imports them.
    from pipespec.schemas.check import check_file
    from pipespec.compiler.compile import compile_checked

    checked = check_file(file, specs_folder=root)
    if checked.spec is None or not checked.ok:
        return None, checked.diagnostics
    pipeline = compile_checked(checked)
    if entry is not None:
        _write_entry(entry, real, checked.files, pipeline, digests)
    return pipeline, []


def _cache_path(cache_dir: Path, spec: Path, digests: dict[str, str]) -> Path | None:
    """Keyed by what the spec is (its real path and bytes) and what compiles it (version, policy):
    an edit, or a new pipespec or policy, looks up a different entry. None: the spec cannot be cached."""
    spec_digest = _digest(spec, digests)
    if spec_digest is None:
        return None
    parts = [__version__, str(IR_VERSION), str(spec), spec_digest, _policy_digest(digests)]
    return cache_dir / f"{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:32]}.json"


def _policy_digest(digests: dict[str, str]) -> str:
    location = policy_location()
    # An unreadable policy makes the checker refuse every spec, so nothing is cached under "-".
    return (_digest(Path(location), digests) or "-") if location else ""


def _digest(path: Path, digests: dict[str, str]) -> str | None:
    """sha256 of a regular file of spec size; None for anything else (a FIFO or device would block
    or never end, and would not be a spec)."""
    key = str(path)
    if key not in digests:
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
                return None
            digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
    return digests[key]


def _read_entry(entry: Path, spec: Path, seen: _Seen) -> Pipeline | None:
    """The cached pipeline of `spec` (a real path), or None."""
    try:
        if not stat.S_ISREG(os.lstat(entry).st_mode):  # a FIFO or a link to /dev/zero would never end
            return None
        data = json.loads(entry.read_text())
        if not (isinstance(data, dict) and data.get("version") == __version__ and data.get("spec") == str(spec)):
            return None
        listed = data.get("files")
        if not (isinstance(listed, dict) and str(spec) in listed and _files_match(listed, spec, seen)):
            return None
        ir = data.get("ir")
        if not (isinstance(ir, dict) and ir.get("ir_version") == IR_VERSION and _well_formed(ir)):
            return None
        pipeline = Pipeline.from_json(ir)
        # The IR names the file it was compiled from (DAG docs, local paths): it must be this one
        # (`spec` is a real path, so its own text needs no resolving).
        return pipeline if pipeline.spec_file == str(spec) or Path(pipeline.spec_file).resolve() == spec else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # a missing, stale or corrupt entry is a cache miss, never an error


def _files_match(listed: dict, spec: Path, seen: _Seen) -> bool:
    """Every listed file is the spec or lies in its spec tree or the shipped templates, and still has
    the listed digest. Nothing else is opened: the entry does not choose what the loader reads."""
    spec_name = str(spec)
    for name, expected in listed.items():
        # Any other spelling of the spec is judged like any other file (its realpath differs, so it fails).
        if name != spec_name and not seen.inside(name, seen.home(spec)):
            return False
        if not (isinstance(expected, str) and _digest(Path(name), seen.digests) == expected):
            return False
    return True


def _write_entry(entry: Path, spec: Path, files: list[Path], pipeline: Pipeline, digests: dict[str, str]) -> None:
    hashes = {str(real): _digest(real, digests) for real in (p.resolve() for p in files)}
    if None in hashes.values():
        return  # a file changed into something unhashable while compiling: do not cache
    data = {"version": __version__, "spec": str(spec), "files": hashes, "ir": pipeline.to_json()}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Atomic replace: several dag-processor workers may parse at once.
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, delete=False, suffix=".tmp") as handle:
            handle.write(json.dumps(data))  # one C-encoded string: json.dump runs the pure-Python encoder
        os.replace(handle.name, entry)
    except OSError:
        pass  # a read-only deployment just parses without the cache


# --- the IR's shape, checked against the dataclasses in pipespec/compiler/ir.py --------------------------

def _well_formed(ir: dict) -> bool:
    """`ir` has exactly the fields and types of `Pipeline.to_json()` (unknown task kinds, strings for
    numbers, missing or extra keys fail), and every task reference points at a task of its DAG."""
    body = {k: v for k, v in ir.items() if k != "ir_version"}
    if not _checker(Pipeline)(body):
        return False
    for dag in body["dags"]:
        ids = [task["task_id"] for task in dag["tasks"]]
        known = set(ids)
        if len(known) != len(ids):
            return False
        for task in dag["tasks"]:
            refs = [*task["upstream"], *task["inputs"].values(), *task["branches"].values()]
            if task["mapping"] and task["mapping"]["over"] is not None:
                refs.append(task["mapping"]["over"])
            if not known.issuperset(refs):
                return False
    return True


@cache
def _checker(hint: Any) -> Callable[[Any], bool]:
    """A predicate for JSON values of type `hint`, built once per type: the loader checks every
    cached IR on every parse, and type introspection per value would double a warm parse."""
    if hint is Any:
        return _anything
    if is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        parts = [(f.name, _checker(hints[f.name])) for f in fields(hint)]
        names = {name for name, _ in parts}

        def record(value: Any) -> bool:
            if type(value) is not dict or value.keys() != names:
                return False
            for name, check in parts:
                if not check(value[name]):
                    return False
            return True
        return record
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        kinds, allowed = {type(arg) for arg in args}, set(args)
        return lambda value: type(value) in kinds and value in allowed  # kinds first: a list is unhashable
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        options = [_checker(arg) for arg in args if arg is not type(None)]
        if len(options) == 1:  # `X | None`: every union in the IR today
            [check] = options
            return lambda value: (optional and value is None) or check(value)
        return lambda value: (optional and value is None) or any(check(value) for check in options)
    if origin is tuple:  # JSON has lists
        if args[1:] != (...,):
            raise TypeError(f"only tuple[X, ...] is supported in the IR, not {hint}")
        item = _checker(args[0])
        if item is _anything:
            return lambda value: type(value) is list
        return lambda value: type(value) is list and all(map(item, value))
    if origin is dict:  # keys need no check: JSON object keys are strings
        if args[0] is not str:
            raise TypeError(f"only dict[str, X] is supported in the IR, not {hint}")
        item = _checker(args[1])
        if item is _anything:
            return lambda value: type(value) is dict
        return lambda value: type(value) is dict and all(map(item, value.values()))
    if hint is type(None):
        return lambda value: value is None
    if hint is float:
        return lambda value: type(value) in (int, float)
    if hint in (int, str, bool):
        return lambda value: type(value) is hint  # `True` is no count and `1` no flag
    raise TypeError(f"no IR shape check for {hint}")


def _anything(value: Any) -> bool:
    return True
