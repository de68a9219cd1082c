"""Compile every spec under a directory into IR, with a content-hash cache.

Used by the DAG loader on every parse, so it is Airflow-free and cheap: a
cached entry is reused when the spec, every template it read, and the
pipespec version are unchanged (hashes of file bytes; no YAML parsing).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .diagnostics import Diagnostic
from .discover import discover
from .ir import IR_VERSION, Pipeline


@dataclass
class BrokenSpec:
    file: str
    diagnostics: list[Diagnostic]


@dataclass
class RepoBuild:
    pipelines: list[Pipeline] = field(default_factory=list)
    broken: list[BrokenSpec] = field(default_factory=list)


def build_repo(root: Path, cache_dir: Path | None = None) -> RepoBuild:
    files, problems = discover([root])
    result = RepoBuild(broken=[BrokenSpec(d.file, [d]) for d in problems])
    names: dict[str, str] = {}
    digests: dict[str, str] = {}  # one hash per file per parse: many specs share a template
    for file in files:
        if file.parent.name == "templates":
            continue
        pipeline, diagnostics = _compile_cached(file, cache_dir, digests)
        if pipeline is None:
            result.broken.append(BrokenSpec(diagnostics[0].file if diagnostics else str(file), diagnostics))
        elif pipeline.name in names:
            # Two specs with one name would silently replace each other's DAGs.
            result.broken.append(BrokenSpec(pipeline.spec_file, [Diagnostic(
                pipeline.spec_file, 1, 1, "pipeline", f"pipeline name `{pipeline.name}` is already used by "
                f"{names[pipeline.name]}", "pipeline names become DAG ids: choose a unique name", code="repo")]))
        else:
            names[pipeline.name] = pipeline.spec_file
            result.pipelines.append(pipeline)
    return result


def _compile_cached(file: Path, cache_dir: Path | None,
                    digests: dict[str, str]) -> tuple[Pipeline | None, list[Diagnostic]]:
    entry = _cache_path(cache_dir, file) if cache_dir else None
    if entry is not None:
        cached = _read_entry(entry, digests)
        if cached is not None:
            return cached, []
    # Only a cache miss pays for the checker and the models (pydantic): a warm parse never imports them.
    from .check import check_file
    from .compile import compile_checked

    checked = check_file(file)
    if checked.spec is None or not checked.ok:
        return None, checked.diagnostics
    pipeline = compile_checked(checked)
    if entry is not None:
        _write_entry(entry, checked.files, pipeline, digests)
    return pipeline, []


def _cache_path(cache_dir: Path, file: Path) -> Path:
    key = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:24]
    return cache_dir / f"{key}.json"


def _digest(path: str, digests: dict[str, str]) -> str:
    if path not in digests:
        digests[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digests[path]


def _read_entry(entry: Path, digests: dict[str, str]) -> Pipeline | None:
    try:
        data = json.loads(entry.read_text())
        if data["version"] != __version__ or data["ir"]["ir_version"] != IR_VERSION:
            return None
        if any(_digest(path, digests) != digest for path, digest in data["files"].items()):
            return None
        return Pipeline.from_json(data["ir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a missing, stale or corrupt entry is a cache miss, never an error


def _write_entry(entry: Path, files: list[Path], pipeline: Pipeline, digests: dict[str, str]) -> None:
    hashes = {str(p.resolve()): _digest(str(p.resolve()), digests) for p in files}
    data = {"version": __version__, "files": hashes, "ir": pipeline.to_json()}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Atomic replace: several dag-processor workers may parse at once.
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, delete=False, suffix=".tmp") as handle:
            json.dump(data, handle)
        os.replace(handle.name, entry)
    except OSError:
        pass  # a read-only deployment just parses without the cache
