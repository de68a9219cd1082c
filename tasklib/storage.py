"""Where data lives, and how it moves between steps: by reference.

- Specs name production URIs (`s3://bucket/prefix/`). With `PIPESPEC_STORAGE_ROOT`
  set (the embedded default of `make demo` and the tests), `s3://bucket/key` maps
  to `<root>/bucket/key` on the local filesystem, so the same spec runs here.
- Otherwise `s3://` goes to S3 through the Airflow connection named in the spec
  (`conn_id`), including an `endpoint_url` in its extras (moto in the tests).
- Steps pass `Ref`s (URI, rows, schema, content hash), never rows, through XCom.
- Intermediate outputs live under a run-scoped prefix (`work_uri`), so a rerun of
  a run overwrites only its own files; files are written to a temporary name and
  renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .context import RunContext


@dataclass(frozen=True)
class Ref:
    """A dataset written by a step: what downstream steps receive instead of rows."""

    uri: str
    rows: int
    schema: dict[str, str]
    sha256: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Ref":
        return cls(**{k: data[k] for k in ("uri", "rows", "schema", "sha256", "source") if k in data})


def storage_root() -> Path | None:
    root = os.environ.get("PIPESPEC_STORAGE_ROOT")
    return Path(root) if root else None


def work_uri(ctx: RunContext, pipeline: str, name: str) -> str:
    """A run-scoped location for a step's output; stable across retries of the same run."""
    base = os.environ.get("PIPESPEC_WORK_URI")
    if base is None:
        root = storage_root() or Path(os.environ.get("AIRFLOW_HOME", ".")) / "pipespec-data"
        base = (root / "_work").as_uri()
    index = f"-{ctx.map_index}" if ctx.map_index >= 0 else ""
    return f"{base.rstrip('/')}/{pipeline}/{ctx.dag_id}/{ctx.run_key}/{ctx.task_id}{index}/{name}"


def filesystem(uri: str, conn_id: str | None = None) -> tuple[Any, str]:
    """(pyarrow FileSystem, path within it) for a URI or a local path."""
    from pyarrow import fs

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else uri
        return fs.LocalFileSystem(), str(Path(path).resolve())
    if parsed.scheme == "s3":
        root = storage_root()
        if root is not None:
            return fs.LocalFileSystem(), str((root / parsed.netloc / parsed.path.lstrip("/")).resolve())
        return _s3(conn_id or "aws_default"), f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    raise ValueError(f"unsupported storage URI `{uri}`: use s3:// or file://")


def _s3(conn_id: str) -> Any:
    """An S3 filesystem from an Airflow connection (credentials never come from the spec)."""
    from airflow.sdk import BaseHook
    from pyarrow import fs

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}).get("endpoint_url"))
    parsed = urlparse(endpoint) if endpoint else None
    return fs.S3FileSystem(
        access_key=conn.login or None, secret_key=conn.password or None,
        region=extra.get("region_name", "us-east-1"),
        endpoint_override=f"{parsed.hostname}:{parsed.port}" if parsed else None,
        scheme=parsed.scheme if parsed else "https",
        connect_timeout=10, request_timeout=60,
    )


def write_table(table: Any, uri: str, conn_id: str | None = None, source: str = "") -> Ref:
    """Write Parquet atomically (temp name, then rename) and return its Ref."""
    import pyarrow.parquet as pq

    filesystem_, path = filesystem(uri, conn_id)
    parent = path.rsplit("/", 1)[0]
    filesystem_.create_dir(parent, recursive=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    pq.write_table(table, temporary, filesystem=filesystem_)
    filesystem_.move(temporary, path)
    return Ref(uri, table.num_rows, {f.name: str(f.type) for f in table.schema}, table_hash(table), source)


def read_table(ref: Ref | dict, conn_id: str | None = None) -> Any:
    import pyarrow.parquet as pq

    ref = ref if isinstance(ref, Ref) else Ref.from_dict(ref)
    filesystem_, path = filesystem(ref.uri, conn_id)
    return pq.read_table(path, filesystem=filesystem_)


def table_hash(table: Any) -> str:
    """Content hash of a table: schema plus data, independent of chunking."""
    import pyarrow as pa

    digest = hashlib.sha256(str(table.schema).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


def write_text(uri: str, text: str, conn_id: str | None = None) -> None:
    filesystem_, path = filesystem(uri, conn_id)
    parent = path.rsplit("/", 1)[0]
    filesystem_.create_dir(parent, recursive=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with filesystem_.open_output_stream(temporary) as handle:
        handle.write(text.encode())
    filesystem_.move(temporary, path)


def read_text(uri: str, conn_id: str | None = None) -> str | None:
    from pyarrow import fs

    filesystem_, path = filesystem(uri, conn_id)
    if filesystem_.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem_.open_input_stream(path) as handle:
        return handle.read().decode()
