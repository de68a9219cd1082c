"""Published datasets: what a data DAG hands to training, with its lineage.

Layout under the Asset URI (`publishes:`):

    <uri>/runs/<pipeline>/<run>/data.parquet     the curated data of one run
    <uri>/runs/<pipeline>/<run>/manifest.json    sources, row counts, content hashes, run id, spec hash
    <uri>/_LATEST                                the run directory readers use, written last

Readers only follow `_LATEST`, and it is replaced atomically after the data and
the manifest are complete, so nothing half-written is ever visible. A rerun of
the same run rewrites its own `runs/<pipeline>/<run>/` and nothing else.

One producer per Asset: the repo check enforces it, and at run time a pipeline
refuses (`latest_of`) an Asset whose last publication another pipeline wrote, so
it neither reads that pipeline's watermarks nor moves its `_LATEST`. Run folders
are keyed by pipeline too, since run ids (`scheduled__<time>`) repeat across DAGs.
`latest` follows `_LATEST` only to a run folder under the Asset itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipespec.tasklib.storage import Ref, read_text, write_text

LATEST = "_LATEST"


@dataclass(frozen=True)
class Published:
    """A published dataset: its data and manifest."""

    data: Ref
    manifest: dict[str, Any]


def run_prefix(uri: str, run_key: str, pipeline: str | None = None) -> str:
    """The folder of one run's publication: `runs/<pipeline>/<run>` (`runs/<run>` without a pipeline)."""
    parts = [pipeline, run_key] if pipeline is not None else [run_key]
    if any(not part.strip(".") or "/" in part for part in parts):
        raise ValueError(f"cannot publish a run keyed {'/'.join(parts)!r}: not a folder name")
    return f"{uri.rstrip('/')}/runs/{'/'.join(parts)}"


def mark_latest(uri: str, prefix: str, conn_id: str | None = None) -> None:
    """Write `<uri>/_LATEST` naming `prefix` (a run's directory): the one readers see from now on."""
    write_text(f"{uri.rstrip('/')}/{LATEST}", prefix, conn_id)


def write_manifest(prefix: str, manifest: dict[str, Any], conn_id: str | None = None) -> None:
    """Write `manifest.json` under a run's prefix."""
    write_text(f"{prefix}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str), conn_id)


def latest(uri: str, conn_id: str | None = None) -> Published | None:
    """The last complete publication under `uri`, or None if there is none yet."""
    prefix = read_text(f"{uri.rstrip('/')}/{LATEST}", conn_id)
    if prefix is None:
        return None
    runs = f"{uri.rstrip('/')}/runs/"
    if not prefix.strip().startswith(runs) or ".." in prefix.strip()[len(runs):].split("/"):
        raise ValueError(f"{uri}: {LATEST} points outside the Asset's run folders ({runs}...); "
                         "republish the Asset, or remove the forged pointer")
    manifest_text = read_text(f"{prefix.strip()}/manifest.json", conn_id)
    if manifest_text is None:
        raise FileNotFoundError(f"{uri}: {LATEST} points at {prefix.strip()}, which has no manifest.json")
    manifest = json.loads(manifest_text)
    data = Ref.from_dict(manifest["data"])
    if data.uri != prefix.strip() and not data.uri.startswith(f"{prefix.strip()}/"):
        raise ValueError(f"{uri}: the manifest of {prefix.strip()} names data outside its run folder")
    return Published(data, manifest)


def latest_of(uri: str, pipeline: str, conn_id: str | None = None) -> Published | None:
    """`latest(uri)` for the pipeline that produces `uri`; PermissionError if another pipeline published it."""
    published = latest(uri, conn_id)
    owner = published.manifest.get("pipeline") if published else None
    if owner not in (None, pipeline):
        raise PermissionError(
            f"{uri} is published by pipeline `{owner}`, not `{pipeline}`: one producer per Asset. Publish "
            f"`{pipeline}` to its own URI (`pipespec check` on the whole repository reports this)")
    return published
