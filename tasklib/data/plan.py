"""`data.plan_sources`: the sources to extract this run, with each `per_folder` source expanded into
one source per folder found under it now (seed 002's knowledge-base ingest maps over folders whose
number changes from run to run).

The data DAG maps `extract` over this list, so each folder is its own task instance, named in the UI
`<source>__<folder>`. A folder's name is data, written by whoever can write to the bucket or the
disk, not by the spec's author:
- it becomes part of a path or URI below the source's own, checked here by the same rules as a
  spec's (no `..`, `?`, `#` or control characters; no symlink out of the allowed roots), and again
  by extract and the run-time policy. A folder that fails them follows the source's `on_bad_rows`:
  `fail` stops the run naming it, `skip` leaves it out with a warning;
- reduced to `[a-z0-9_-]`, it names the instance, its work file and its record count;
- it is never a template: Airflow does not render values an upstream task returned;
- in messages it is quoted with `repr`, so a newline or terminal escape in it stays visible text.

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
_HASHED = re.compile(r"_[0-9a-f]{8}$")


def plan_sources(ctx: RunContext, *, spec_dir: str, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec's sources in order, each `per_folder` one replaced by one source per folder under it
    (a folder read whole), plus one for the files directly in it, if there are any."""
    planned: list[dict[str, Any]] = []
    taken = {s["name"] for s in sources if not s.get("per_folder")}
    for source in sources:
        if not source.get("per_folder"):
            planned.append(source)
            continue
        found, top_files = folders(source, spec_dir)
        key = "uri" if source["type"] == "s3" else "path"
        base = source[key].rstrip("/")
        for folder, problem in found:
            location = f"{base}/{folder}/"
            if problem := problem or _location_problem(source["type"], location):
                _refuse(source, folder, problem)
                continue
            name = _instance_name(source["name"], folder, taken)
            planned.append({**source, "name": name, key: location, "per_folder": False})
        if top_files:
            planned.append({**source, "name": _claim(source["name"], taken), "per_folder": False, "recursive": False})
        log.info("source %s: %d folder(s)%s", source["name"], len(found), " and files at the top" if top_files else "")
        if not found and not top_files:
            raise FileNotFoundError(f"source `{source['name']}`: no folder and no {source['format']} file under "
                                    f"{source[key]}")
    if len(planned) > (limit := _max_map_length()):
        raise ValueError(f"{len(planned)} sources to extract, more than the {limit} instances Airflow maps a task "
                         f"into ([core] max_map_length): group the folders under fewer folders")
    return planned


def _location_problem(kind: str, location: str) -> str | None:
    """What the spec's rules say of a folder's path or URI, as they say it of a spec's own."""
    from pipespec.schemas.data_access import data_uri_problem, local_path_problem

    return data_uri_problem(location) if kind == "s3" else local_path_problem(location)


def _refuse(source: dict[str, Any], folder: str, problem: str) -> None:
    message = f"source `{source['name']}`: the folder {folder!r} cannot be read: {problem}"
    if source.get("on_bad_rows", "fail") == "fail":
        raise PermissionError(f"{message} (set on_bad_rows: skip to leave such folders out)")
    log.warning("%s; left out (on_bad_rows: skip)", message)


def _instance_name(source: str, folder: str, taken: set[str]) -> str:
    """`<source>__<folder>` where the folder's name is already lower-case letters, digits, `_` and `-`;
    otherwise reduced to those, plus a short hash of the source's and the folder's own names, so that
    two folders never share a name and a folder keeps its name (and so its `only_new` watermark) from
    run to run, whatever other folders appear. A name that looks hashed already is hashed again, so
    that no folder can take another's name."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", folder.lower()).strip("_-") or "folder"
    name = f"{source}__{slug}"
    if slug != folder or len(name) > NAME_MAX or _HASHED.search(slug):
        digest = hashlib.sha256(f"{source}\0{folder}".encode()).hexdigest()[:8]
        name = f"{name[:NAME_MAX - 9]}_{digest}"
    return _claim(name, taken, folder)


def _claim(name: str, taken: set[str], folder: str | None = None) -> str:
    if name in taken:  # two sources' folders, after reduction and hashing: vanishingly rare
        raise ValueError(f"two instances would be named `{name}`" + (f"; rename the folder {folder!r}" if folder else ""))
    taken.add(name)
    return name


def _max_map_length() -> int:
    """Airflow's limit on a mapped task's instances; said here, by source, rather than by the scheduler."""
    try:
        from airflow.configuration import conf
    except ImportError:  # a step run outside Airflow (`pipespec run` has it; tests of the step may not)
        return 1024
    return conf.getint("core", "max_map_length", fallback=1024)
