"""A DAG run's workspace: the run-scoped prefix of its intermediate files (`storage.work_uri`),
prepared by an Airflow setup task and deleted by its teardown whatever happened (seed 003's
`clean_storage_before_start` and `clean_up`, with `dag.workspace: clean`).

The setup never empties its own run's workspace: Airflow re-runs a setup whenever a task in its
scope is cleared, and that task still needs its upstream outputs. Before the run starts it removes
what earlier runs of the same DAG left behind when their teardown never ran (a killed worker), once
their marker is older than `STALE_AFTER_S`, so a run still in progress is never touched. After the
teardown, a rerun starts from the first task (clear the run, not one task).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)

MARKER = "_workspace.json"
STALE_AFTER_S = 2 * 24 * 3600  # runs of one DAG overlap only with max_active_runs > 1, and not for days


def prepare(ctx: RunContext, *, pipeline: str) -> dict:
    """Mark this run's workspace and remove stale ones of earlier runs. Returns {"workspace", "removed": run keys}."""
    from pyarrow import fs as pafs

    workspace = storage.workspace_uri(ctx, pipeline)
    filesystem, path = storage.filesystem(workspace)
    if isinstance(filesystem, pafs.LocalFileSystem):  # S3 needs no folders (pyarrow would write marker objects)
        filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/{MARKER}") as out:
        out.write(json.dumps({"dag_id": ctx.dag_id, "run_id": ctx.run_id,
                              "started": datetime.now(timezone.utc).isoformat()}).encode())
    parent = path.rsplit("/", 1)[0]
    removed = []
    for entry in filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
        run_key = entry.base_name
        if entry.type != pafs.FileType.Directory or run_key == ctx.run_key:
            continue
        marker = filesystem.get_file_info(f"{entry.path}/{MARKER}")
        if marker.type != pafs.FileType.File or marker.mtime is None:
            continue  # not a workspace a setup prepared: not ours to judge
        if time.time() - marker.mtime.timestamp() > STALE_AFTER_S:
            filesystem.delete_dir(entry.path)
            removed.append(run_key)
    if removed:
        log.info("pipespec: removed %d stale workspace(s) of %s: %s", len(removed), ctx.dag_id, ", ".join(removed))
    return {"workspace": workspace, "removed": removed}


def clean(ctx: RunContext, *, pipeline: str) -> dict:
    """Delete this run's workspace (the teardown). Returns {"workspace", "removed": whether it existed}."""
    from pyarrow import fs as pafs

    workspace = storage.workspace_uri(ctx, pipeline)
    filesystem, path = storage.filesystem(workspace)
    exists = filesystem.get_file_info(path).type == pafs.FileType.Directory
    if exists:
        filesystem.delete_dir(path)
    log.info("pipespec: %s workspace %s", "deleted" if exists else "no", workspace)
    return {"workspace": workspace, "removed": exists}
