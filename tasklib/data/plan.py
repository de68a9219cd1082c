"""`data.plan_sources`: the sources to extract this run, with each `per_folder` source expanded into
one source per folder found under it now (seed 002's knowledge-base ingest maps over folders whose
number changes from run to run).

The data DAG maps `extract` over this list, so each folder is its own task instance, named in the UI
`<source>__<folder>`. A folder's name is data, written by whoever can write to the bucket or the
disk: it becomes part of a path and a URI (below the source's own, confined again by extract) and,
reduced to `[a-z0-9_-]`, the instance's name, which also names its work file and its record count.
It is never a template: Airflow does not render values an upstream task returned.

Files directly under a `per_folder` source, outside any folder, are one more instance, named after
the source and reading only that level, so nothing there is lost.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.extract import folders

log = logging.getLogger(__name__)

NAME_MAX = 63  # as a source name: it names a work file and a record-count row


def plan_sources(ctx: RunContext, *, spec_dir: str, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec's sources in order, each `per_folder` one replaced by one source per folder under it
    (a folder read whole), plus one for the files directly in it, if there are any."""
    planned: list[dict[str, Any]] = []
    taken = {s["name"] for s in sources if not s.get("per_folder")}
    for source in sources:
        if not source.get("per_folder"):
            planned.append(source)
            continue
        names, top_files = folders(source, spec_dir)
        key = "uri" if source["type"] == "s3" else "path"
        base = source[key].rstrip("/")
        for folder in names:
            name = _instance_name(source["name"], folder, taken)
            planned.append({**source, "name": name, key: f"{base}/{folder}/", "per_folder": False})
        if top_files:
            planned.append({**source, "per_folder": False, "recursive": False})
        log.info("source %s: %d folder(s)%s", source["name"], len(names), " and files at the top" if top_files else "")
        if not names and not top_files:
            raise FileNotFoundError(f"source `{source['name']}`: no folder and no {source['format']} file under "
                                    f"{source[key]}")
    if len(planned) > (limit := _max_map_length()):
        raise ValueError(f"{len(planned)} sources to extract, more than the {limit} instances Airflow maps a task "
                         f"into ([core] max_map_length): group the folders under fewer folders")
    return planned


def _max_map_length() -> int:
    """Airflow's limit on a mapped task's instances; said here, by source, rather than by the scheduler."""
    try:
        from airflow.configuration import conf
    except ImportError:  # a step run outside Airflow (`pipespec run` has it; tests of the step may not)
        return 1024
    return conf.getint("core", "max_map_length", fallback=1024)


def _instance_name(source: str, folder: str, taken: set[str]) -> str:
    """`<source>__<folder>` where the folder's name is already lower-case letters, digits, `_` and `-`;
    otherwise reduced to those, plus a short hash of the name itself, so that two folders never
    share a name and a folder keeps its name (and so its `only_new` watermark) from run to run,
    whatever other folders appear."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", folder.lower()).strip("_-") or "folder"
    name = f"{source}__{slug}"
    if slug != folder or len(name) > NAME_MAX:
        name = f"{name[:NAME_MAX - 9]}_{hashlib.sha256(folder.encode()).hexdigest()[:8]}"
    if name in taken:
        raise ValueError(f"source `{source}`: the folders under it give two instances the name `{name}`; "
                         f"rename the folder `{folder}`")
    taken.add(name)
    return name
