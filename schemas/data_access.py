"""Which data a spec may name (DESIGN.md 4b): pure rules, shared by the checker and the steps.

- A local source's `path` is relative to the spec's folder: not absolute, no `..`, no `~`,
  no control characters. Other folders are reached only through the platform's data root
  (`PIPESPEC_DATA_ROOT`), which the steps enforce at run time (pipespec.tasklib.storage), symlinks included.
- URIs that steps read or write (sources, published Assets, holdouts, drift references,
  inference input and output) use a scheme the storage layer serves for specs: `s3` only.
  `file://` is the platform's own work area, never a spec's: a spec that could name it
  could read any file the worker can. Keys have no `.`/`..` segment (also percent-encoded),
  which the local mapping of S3 (`PIPESPEC_STORAGE_ROOT`) would otherwise climb out with.

- A SQL source's query names the run's data interval with exactly two placeholders,
  `{{ data_interval_start }}` and `{{ data_interval_end }}`, replaced as text. No template engine
  runs on it: a Jinja sandbox still evaluates loops and arithmetic (`{{ x * 10**12 }}`), which a
  spec could use to exhaust a shared worker.

The checker turns the ValueErrors into file:line:col diagnostics; the messages never quote
more than the offending path or URI the spec itself wrote.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

DATA_SCHEMES = ("s3",)
LOCAL_PATH_HINT = ("a local source's `path` is relative to the spec's folder (e.g. `data/raw/`); data elsewhere "
                   "is read through the platform's data root or from `s3://`")
DATA_URI_HINT = "data lives in `s3://bucket/prefix/`; local files are read with a `type: local` source"


def _control(text: str) -> bool:
    # Cc: NUL, newlines, escapes; Cf: bidi overrides and other invisible characters.
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def local_path_problem(path: str) -> str | None:
    """Why `path` may not be a local source's path, or None."""
    if not path.strip():
        return "local source path is empty"
    if _control(path):
        return "local source path contains control characters"
    if path.startswith(("/", "~")) or (len(path) > 1 and path[1] == ":"):
        return f"local source path `{path}` is absolute; it must be relative to the spec's folder"
    if ".." in path.replace("\\", "/").split("/"):
        return f"local source path `{path}` climbs out with `..`; it must stay in the spec's folder"
    return None


def data_uri_problem(uri: str) -> str | None:
    """Why steps may not read or write `uri`, or None."""
    if _control(uri):
        return "data URI contains control characters"
    parts = urlsplit(uri)
    if parts.scheme not in DATA_SCHEMES:
        allowed = ", ".join(f"`{s}://`" for s in DATA_SCHEMES)
        scheme = f"`{parts.scheme}://`" if parts.scheme else f"`{uri}` (no scheme)"
        return f"{scheme} is not allowed for data that steps read or write: use {allowed}"
    if not parts.netloc:
        return f"`{uri}` names no bucket"
    if "?" in uri or "#" in uri:  # read as a query or fragment, they would make it name another prefix
        return f"`{uri}` has a `?` or `#`: a data URI names an object or a prefix, nothing else"
    segments = unquote(parts.path).replace("\\", "/").split("/")
    if parts.netloc in (".", "..") or any(s in (".", "..") for s in segments):
        return f"`{uri}` has a `.` or `..` segment; name the object or prefix directly"
    if "" in segments[1:-1]:  # `s3://b//x` is the key of `s3://b/x` to storage, another Asset to Airflow
        return f"`{uri}` has an empty path segment (`//`); write each `/` once"
    return None


def check_local_path(path: str) -> str:
    """The path, or ValueError when the data-access rules refuse it."""
    problem = local_path_problem(path)
    if problem:
        raise ValueError(problem)
    return path


def check_data_uri(uri: str) -> str:
    """The URI, or ValueError when the data-access rules refuse it."""
    problem = data_uri_problem(uri)
    if problem:
        raise ValueError(problem)
    return uri


QUERY_PLACEHOLDERS = ("data_interval_start", "data_interval_end")
_PLACEHOLDER = re.compile(r"\{\{\s*(data_interval_start|data_interval_end)\s*\}\}")
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")


def query_problem(query: str) -> str | None:
    """Why a SQL source's query may not run, or None: template syntax other than the two placeholders."""
    if _TEMPLATE_SYNTAX.search(_PLACEHOLDER.sub("", query)):
        return ("a query may only use `{{ data_interval_start }}` and `{{ data_interval_end }}` as written; "
                "other `{{ }}`, `{% %}` and `{# #}` are not evaluated")
    return None


def fill_query(query: str, values: dict[str, str]) -> str:
    """The query with each placeholder replaced by its value (after `query_problem` found none)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)


def query_placeholders(query: str) -> set[str]:
    """The `{{ name }}` placeholders a query uses."""
    return set(_PLACEHOLDER.findall(query))
