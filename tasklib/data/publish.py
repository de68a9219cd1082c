"""Publish curated data as the pipeline's Asset, with its lineage manifest.

The joined data is copied into `<publishes>/runs/<pipeline>/<run>/` (byte for byte,
streamed: the bytes and sha256 a rewrite would give, see storage.copy_parquet),
the manifest written beside it, and only then `_LATEST` is switched (see pipespec.tasklib.published). The
manifest records which sources contributed what (with their watermarks, so the
next `only_new` extract knows where to start), the gate's numbers, and the run:
training attaches it to the model, so anyone can tell which data trained which
model. A pipeline publishes only to an Asset it produces (`latest_of`): it is
refused before anything is written when another pipeline published there.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.published import latest_of, mark_latest, run_prefix, write_manifest
from pipespec.tasklib.storage import copy_parquet


def publish(ctx: RunContext, *, pipeline: str, publishes: str, spec_hash: str, dataset: dict,
            measurement: dict) -> dict[str, Any]:
    """Copy the joined data under `<publishes>/runs/<pipeline>/<run>/` with its manifest, then point
    `_LATEST` at it (readers never see a half-written publication). In the data DAG `dataset` and
    `measurement` are one result, `measure`'s (data.curate: the joined data's Ref and its measurement).

    Returns the publication's {"uri", "rows", ...}."""
    latest_of(publishes, pipeline)  # one producer per Asset
    prefix = run_prefix(publishes, ctx.run_key, pipeline)
    data = copy_parquet(dataset, f"{prefix}/data.parquet")
    manifest = {
        "pipeline": pipeline, "asset": publishes, "run_id": ctx.run_id, "dag_id": ctx.dag_id, "spec_hash": spec_hash,
        "published_at": datetime.now(timezone.utc).isoformat(),
        "data": data.to_dict(),
        "sources": dataset.get("sources", {}),
        "measurement": {k: measurement.get(k) for k in ("rows", "new_rows", "drift", "drifted", "reason")},
    }
    write_manifest(prefix, manifest)
    mark_latest(publishes, prefix)
    return {"uri": data.uri, "rows": data.rows, "sha256": data.sha256, "manifest": f"{prefix}/manifest.json"}
