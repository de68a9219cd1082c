"""Published datasets: what a data DAG hands to training, with its lineage.

Layout under the Asset URI (`publishes:`):

    <uri>/runs/<run>/data.parquet     the curated data of one run
    <uri>/runs/<run>/manifest.json    sources, row counts, content hashes, run id, spec hash
    <uri>/_LATEST                     the run directory readers use, written last

Readers only follow `_LATEST`, and it is replaced atomically after the data and
the manifest are complete, so nothing half-written is ever visible. A rerun of
the same run rewrites its own `runs/<run>/` and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .storage import Ref, read_text, write_text

LATEST = "_LATEST"


@dataclass(frozen=True)
class Published:
    data: Ref
    manifest: dict[str, Any]


def run_prefix(uri: str, run_key: str) -> str:
    return f"{uri.rstrip('/')}/runs/{run_key}"


def mark_latest(uri: str, prefix: str, conn_id: str | None = None) -> None:
    write_text(f"{uri.rstrip('/')}/{LATEST}", prefix, conn_id)


def write_manifest(prefix: str, manifest: dict[str, Any], conn_id: str | None = None) -> None:
    write_text(f"{prefix}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str), conn_id)


def latest(uri: str, conn_id: str | None = None) -> Published | None:
    """The last complete publication under `uri`, or None if there is none yet."""
    prefix = read_text(f"{uri.rstrip('/')}/{LATEST}", conn_id)
    if prefix is None:
        return None
    manifest_text = read_text(f"{prefix.strip()}/manifest.json", conn_id)
    if manifest_text is None:
        raise FileNotFoundError(f"{uri}: {LATEST} points at {prefix.strip()}, which has no manifest.json")
    manifest = json.loads(manifest_text)
    return Published(Ref.from_dict(manifest["data"]), manifest)
