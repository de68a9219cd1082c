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
- Local data is confined (DESIGN.md 4b): a local path or `file://` URI must resolve, symlinks
  followed, inside `local_roots()` (`PIPESPEC_DATA_ROOT`, the storage root, the work area) or a
  root the caller adds (a source's spec folder); `s3://` mapped to `PIPESPEC_STORAGE_ROOT` stays
  inside that root. A spec, the IR cache or a forged `_LATEST` can name no other file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)


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
    """`$PIPESPEC_STORAGE_ROOT` as a path; None when unset."""
    root = os.environ.get("PIPESPEC_STORAGE_ROOT")
    return Path(root) if root else None


def _default_root() -> Path:
    return storage_root() or Path(os.environ.get("AIRFLOW_HOME", ".")) / "pipespec-data"


def data_roots() -> list[Path]:
    """The platform's data roots (resolved): each `PIPESPEC_DATA_ROOT` entry (os.pathsep-separated)."""
    return [Path(p).resolve() for p in os.environ.get("PIPESPEC_DATA_ROOT", "").split(os.pathsep) if p.strip()]


def local_roots() -> list[Path]:
    """The local folders (resolved) any step may read and write: the data roots, the storage root or
    `$AIRFLOW_HOME/pipespec-data`, and a `file://` work area."""
    roots = data_roots()
    roots.append(_default_root())
    work = urlparse(os.environ.get("PIPESPEC_WORK_URI", ""))
    if work.scheme == "file":
        roots.append(Path(unquote(work.path)))
    return [root.resolve() for root in roots]


def confine(path: str | Path, roots: Sequence[Path], label: str) -> str:
    """`path` resolved (symlinks followed), if it lies inside one of `roots`; else PermissionError.

    `label` is what the message names: the spec's own path or URI, never the symlink's target."""
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PermissionError(
            f"{label}: outside the folders pipespec may read and write (a local source reads its spec's folder; "
            "others need the platform's PIPESPEC_DATA_ROOT); symlinks are followed before this check")
    return str(resolved)


def work_uri(ctx: RunContext, pipeline: str, name: str) -> str:
    """A run-scoped location for a step's output; stable across retries of the same run."""
    index = f"-{ctx.map_index}" if ctx.map_index >= 0 else ""
    return f"{workspace_uri(ctx, pipeline)}/{ctx.task_id}{index}/{name}"


def workspace_uri(ctx: RunContext, pipeline: str, run_key: str | None = None) -> str:
    """The prefix of every intermediate output of one DAG run: this run's, or another run's of the same DAG."""
    base = os.environ.get("PIPESPEC_WORK_URI")
    if base is None:
        base = (_default_root() / "_work").resolve().as_uri()  # as_uri() needs an absolute path
    return f"{base.rstrip('/')}/{pipeline}/{ctx.dag_id}/{ctx.run_key if run_key is None else run_key}"


REQUEST_TIMEOUT_S = 60  # one S3 request; a source's own `timeout` can only shorten it


def roots_for(uri: str, extra_roots: Sequence[Path] = ()) -> list[Path] | None:
    """The roots a local path for `uri` must stay in (see `confine`); None where `uri` is not local."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return [*(Path(r).resolve() for r in extra_roots), *local_roots()]
    root = storage_root() if parsed.scheme == "s3" else None
    return [root.resolve()] if root is not None else None


def filesystem(uri: str, conn_id: str | None = None, request_timeout_s: float = REQUEST_TIMEOUT_S,
               extra_roots: Sequence[Path] = ()) -> tuple[Any, str]:
    """(pyarrow FileSystem, path within it) for a URI or a local path, confined to `roots_for(uri)`.

    `request_timeout_s` bounds each S3 request. It matters because Airflow's execution
    timeout is a signal, which cannot interrupt a request blocked inside pyarrow's C++."""
    from pyarrow import fs

    parsed = urlparse(uri)
    roots = roots_for(uri, extra_roots)
    if parsed.scheme in ("", "file"):
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise ValueError(f"`{uri}`: a file:// URI names no host (file:///path)")
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return fs.LocalFileSystem(), confine(path, roots, uri)  # type: ignore[arg-type]
    if parsed.scheme == "s3":
        if roots is not None:  # PIPESPEC_STORAGE_ROOT: s3://bucket/key is <root>/bucket/key
            return fs.LocalFileSystem(), confine(roots[0] / parsed.netloc / parsed.path.lstrip("/"), roots, uri)
        return _s3(conn_id or "aws_default", request_timeout_s), f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    raise ValueError(f"unsupported storage URI `{uri}`: use s3:// or file://")


def _s3(conn_id: str, request_timeout_s: float) -> Any:
    """An S3 filesystem from an Airflow connection (credentials never come from the spec)."""
    from pyarrow import fs

    return fs.S3FileSystem(**s3_options(conn_id), connect_timeout=min(10, request_timeout_s),
                           request_timeout=request_timeout_s)


def s3_options(conn_id: str) -> dict[str, Any]:
    """pyarrow S3FileSystem settings from the Airflow connection, resolved by S3Hook exactly as
    boto3 resolves them: keys, a session token, a `role_arn` to assume, a profile, the region,
    an `endpoint_url` (also per service, `service_config.s3.endpoint_url`)."""
    if _connection_or_none(conn_id) is None:
        # Inside a training pod or an Anyscale job there is no Airflow connection: pyarrow uses the
        # default AWS credential chain (the pod's service account, instance profile, env vars).
        return {}
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    try:
        credentials = hook.get_credentials()  # also masks the secret and token in task logs
    except AttributeError:  # botocore found no credentials at all: anonymous access
        credentials = None
    endpoint = hook.conn_config.get_service_endpoint_url("s3")
    parsed = urlparse(endpoint) if endpoint else None
    options: dict[str, Any] = {"region": hook.conn_region_name or "us-east-1"}
    if credentials is not None and credentials.access_key:
        options.update(access_key=credentials.access_key, secret_key=credentials.secret_key,
                       session_token=credentials.token)
    if parsed:
        options.update(endpoint_override=f"{parsed.hostname}:{parsed.port}" if parsed.port else parsed.hostname,
                       scheme=parsed.scheme)
    return options


BATCH_ROWS = 65_536  # rows per Parquet row group, and at most one batch in memory per writer
# A Parquet column chunk is read through a buffer of this size, not whole: a file with large row groups
# (1M rows; Spark writes 128 MB) cost Arrow 62 MB per reader, 26 MB with the buffer, no slower.
READ_BUFFER_BYTES = 1 << 20


def iter_batches(file: Any, columns: list[str] | None = None) -> Iterator[Any]:
    """A ParquetFile's record batches (at most BATCH_ROWS rows), decoded on this thread: decoding
    in Arrow's pool threads saved no time here, and each thread's allocator heap kept its own
    batches' worth of memory (peak RSS grew by ~25 MB more over a few batches).

    One reader per run of row groups of up to BATCH_ROWS rows (one group, for pipespec's own files):
    a single reader over a whole file held more memory with every row group it had read, outside
    Arrow's pool (RSS 93 -> 105 MB over 2 -> 39 groups of 131k rows; per group: flat, and no slower).
    Anything else with `iter_batches` (extract's spooled pieces) is read as it reads itself."""
    metadata = file.metadata
    if not hasattr(metadata, "row_group"):
        yield from file.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)
        return
    group, count = 0, metadata.num_row_groups
    while group < count:
        end, rows = group + 1, metadata.row_group(group).num_rows
        while end < count and rows + metadata.row_group(end).num_rows <= BATCH_ROWS:
            rows += metadata.row_group(end).num_rows
            end += 1
        yield from file.iter_batches(batch_size=BATCH_ROWS, row_groups=range(group, end), columns=columns,
                                     use_threads=False)
        group = end


def _connection_or_none(conn_id: str) -> Any:
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own not-found error type, which differs across versions
        if "isn't defined" in str(exc) or "not found" in str(exc).lower():
            return None
        raise


def write_table(table: Any, uri: str, conn_id: str | None = None, source: str = "") -> Ref:
    """Write an Arrow table as Parquet at `uri`; its Ref."""
    return write_batches(iter(table.to_batches()), table.schema, uri, conn_id, source)


def write_batches(batches: Iterator[Any], schema: Any, uri: str, conn_id: str | None = None,
                  source: str = "") -> Ref:
    """Stream record batches into one Parquet file, atomically (temporary name, then moved).

    The Ref's sha256 is that of the file's bytes (`sha256sum` can check it). Rows are
    regrouped into fixed-size row groups first, so the hash depends on the data, not on how
    the input happened to be split into files and chunks.
    """
    with _atomic_output(uri, conn_id) as stream:
        rows, digest = _write_parquet(batches, schema, stream)
    return Ref(uri, rows, {f.name: str(f.type) for f in schema}, digest, source)


@contextmanager
def _atomic_output(uri: str, conn_id: str | None) -> Iterator[Any]:
    """An output stream to a temporary name beside `uri`, moved onto `uri` once the body succeeds."""
    filesystem_, path = filesystem(uri, conn_id)
    parent = path.rsplit("/", 1)[0]
    filesystem_.create_dir(parent, recursive=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    try:
        with filesystem_.open_output_stream(temporary) as stream:
            yield stream
        filesystem_.move(temporary, path)
    except BaseException:
        _remove_quietly(filesystem_, temporary)
        raise


COPY_CHUNK_BYTES = 8 << 20


def copy_parquet(ref: Ref | dict, uri: str, conn_id: str | None = None) -> Ref:
    """A step's Parquet output copied to `uri` byte for byte, streamed, and checked against its Ref.

    Every pipespec Parquet file is written by `write_batches`, so its bytes already are those
    `write_table` would write for its data: a copy has the same sha256 as a rewrite, without
    decoding a row. A file whose bytes no longer match its Ref's sha256 is refused."""
    ref = ref if isinstance(ref, Ref) else Ref.from_dict(ref)
    with open_parquet(ref, conn_id) as file:  # rows and columns from the footer, not from the caller
        rows, schema = file.metadata.num_rows, {f.name: str(f.type) for f in file.schema_arrow}
    source_filesystem, source_path = filesystem(ref.uri, conn_id)
    digest = hashlib.sha256()
    with _atomic_output(uri, conn_id) as stream, source_filesystem.open_input_stream(source_path) as handle:
        while chunk := handle.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            stream.write(chunk)
        if ref.sha256 and digest.hexdigest() != ref.sha256:
            raise ValueError(f"{ref.uri}: its content changed after it was written (sha256 "
                             f"{digest.hexdigest()}, recorded {ref.sha256}); rerun the step that wrote it")
    return Ref(uri, rows, schema, digest.hexdigest())


def table_hash(table: Any) -> str:
    """The sha256 `write_table` would record for this table, without writing it anywhere."""
    import pyarrow as pa

    return _write_parquet(iter(table.to_batches()), table.schema, pa.BufferOutputStream())[1]


def _write_parquet(batches: Iterator[Any], schema: Any, stream: Any) -> tuple[int, str]:
    """The one way pipespec writes Parquet: fixed row groups, so equal data gives equal bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _HashingSink(stream)
    pool = pa.default_memory_pool()

    def write(table: Any) -> None:
        writer.write_table(table, row_group_size=BATCH_ROWS)
        # Hand the freed batch and encoder buffers back to the OS: the allocator
        # otherwise keeps them, in pages that later batches fill only in part, and peak
        # RSS crept up by ~10-25 MB over the first few row groups of each task.
        pool.release_unused()

    with pq.ParquetWriter(sink, schema) as writer:
        rows = write_behind(_regroup(batches, schema, BATCH_ROWS), write)
    return rows, sink.digest.hexdigest()


def write_behind(tables: Iterator[Any], write: Callable[[Any], None]) -> int:
    """`write(table)` for each table, on a second thread, while this thread makes the next table (reads,
    transforms); the rows written. Parquet's encoder and compression release the GIL, so on two
    cores making and writing overlap: the data DAG's steps took ~10% less time (bench/data_throughput.py).

    The hand-over has no buffer: this thread makes the next table only once the writer has taken the
    last, so memory holds one table more than writing inline, whatever the rows. Only Arrow's writer
    runs on the second thread, never a spec's or a plugin's code. A failure, a timeout (Airflow's
    SIGALRM) or an interrupt is raised on this thread only once the writer is done with the file:
    closing a Parquet writer while another thread still wrote to it crashed the process."""
    import queue
    import threading

    slot: queue.Queue[Any] = queue.Queue(maxsize=1)
    done, stop = threading.Event(), threading.Event()
    failed: list[BaseException] = []
    rows = 0

    def writer() -> None:
        try:
            while (table := slot.get()) is not None:
                slot.task_done()  # taken: the producer may make the next one
                if not (failed or stop.is_set()):
                    try:
                        write(table)
                    except BaseException as error:  # noqa: BLE001 - raised on the producer's thread
                        failed.append(error)
                del table
        finally:
            done.set()

    threading.Thread(target=writer, name="pipespec-write-behind", daemon=True).start()
    try:
        for table in tables:
            if failed:
                break
            rows += table.num_rows
            slot.put(table)
            del table
            slot.join()
    except BaseException:
        stop.set()  # write nothing more: the step has failed
        _writer_finished(slot, done)
        _close(tables)
        if failed:
            log.error("the writer failed as well: %s", failed[0])
        raise
    _writer_finished(slot, done)
    _close(tables)  # after a writer failure: release what the producer holds (open pieces, maps)
    if failed:
        raise failed[0]
    return rows


def _writer_finished(slot: Any, done: Any) -> None:
    """Hand write_behind's writer its end and wait until it has finished, through any exception a
    signal raises meanwhile (the task's timeout): that one is raised after."""
    pending: BaseException | None = None
    sent = False
    while not done.is_set():
        try:
            if not sent:
                slot.put(None)
                sent = True
            done.wait()
        except BaseException as error:  # noqa: BLE001 - re-raised once the writer is done
            pending = pending or error
    if pending is not None:
        raise pending


def _close(tables: Iterator[Any]) -> None:
    """Close a generator (its `finally` and `with` blocks run now, not at garbage collection)."""
    try:
        close = getattr(tables, "close", None)
        if close is not None:
            close()
    except Exception:  # noqa: BLE001 - cleanup only: the step's own outcome is what is raised
        log.warning("could not close a stream of tables", exc_info=True)


def _regroup(batches: Iterator[Any], schema: Any, size: int) -> Iterator[Any]:
    """Tables of exactly `size` rows (the last one: the rest), each in one contiguous chunk."""
    import pyarrow as pa

    buffered: list[Any] = []
    count = 0
    for batch in batches:
        buffered.append(batch)
        count += batch.num_rows
        del batch  # `buffered` holds it, and lets it go once it is written
        while count >= size:
            table = pa.Table.from_batches(buffered, schema)
            group, rest = table.slice(0, size).combine_chunks(), table.slice(size)
            # Hold only what is not written yet while the row group is written: the batches
            # wholly inside it are freed now, not after the writer is done with it.
            buffered, count = rest.to_batches(), rest.num_rows
            del table, rest
            yield group
            del group
    if count:
        yield pa.Table.from_batches(buffered, schema).combine_chunks()


class _HashingSink:
    """A write-only file object that hashes what passes through it to the real output stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.stream.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:  # the stream is closed by its own `with`
        self.closed = True


def _remove_quietly(filesystem_: Any, path: str) -> None:
    try:
        filesystem_.delete_file(path)
    except OSError:
        pass


def open_parquet(ref: Ref | dict, conn_id: str | None = None) -> Any:
    """A step's Parquet output, opened for its schema, row count and batches (use with `with`)."""
    import pyarrow.parquet as pq

    uri = ref.uri if isinstance(ref, Ref) else ref["uri"]
    filesystem_, path = filesystem(uri, conn_id)
    # Without pre_buffer: Arrow would keep every column chunk read until close, so join and measure
    # would grow with the data (bench/data_throughput.py measures memory from 1M to 10M rows).
    return pq.ParquetFile(path, filesystem=filesystem_, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)


def read_table(ref: Ref | dict, conn_id: str | None = None) -> Any:
    """The Arrow table a Ref points at."""
    import pyarrow.parquet as pq

    ref = ref if isinstance(ref, Ref) else Ref.from_dict(ref)
    filesystem_, path = filesystem(ref.uri, conn_id)
    return pq.read_table(path, filesystem=filesystem_)


def write_text(uri: str, text: str, conn_id: str | None = None) -> None:
    """Write text at `uri`, atomically."""
    with _atomic_output(uri, conn_id) as handle:
        handle.write(text.encode())


def read_text(uri: str, conn_id: str | None = None) -> str | None:
    """The text at `uri`; None when there is no file."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri, conn_id)
    if filesystem_.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem_.open_input_stream(path) as handle:
        return handle.read().decode()
