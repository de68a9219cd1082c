"""`data.extract`: read one source (files or a query) into one run-scoped Parquet file.

Output: `storage.work_uri(ctx, pipeline, "<source>.parquet")` — the same URI on
every try of the same run, written to a temporary name and moved into place, so
a retry overwrites it and a reader never sees half a file. The step returns the
`Ref` plus `source`, `files`, `new_files`, `bad_rows` and `watermark`.

Incremental contract (`only_new`), shared with the publish step:
- the watermark of an object source is the newest last-modified time among
  the files read (ISO 8601); with nothing new, the previous watermark is kept;
- `data.publish` copies each source's `watermark` from this step's output into
  the manifest, as `manifest["sources"][<name>]["watermark"]`;
- the next `only_new` extract reads the last publication under `publishes`
  (`pipespec.tasklib.published.latest`) and reads only files modified strictly after
  that watermark; with no publication yet, it reads everything. Files that
  were modified while a run was extracting, within the same second as its
  newest file, may be read by neither run (S3 times have second precision).
SQL sources are not incremental here: their query filters on
`{{ data_interval_start }}` / `{{ data_interval_end }}` (pipespec.tasklib.data.sql_render).

Memory: inputs are read in bounded chunks (pipespec.tasklib.data.readers). Files of one
source may differ in columns, so chunks are first spooled to a local temporary
directory (Parquet inputs are read in place) while their schemas are unified by
column name; a second pass casts each chunk to that schema and streams it into
the output. Missing columns become nulls, nulls and numeric widening are
reconciled, and any other type conflict is an error naming both files.

Confinement (DESIGN.md 4b): a local source reads only inside its spec's folder and the
platform's data roots, with every file's symlinks resolved first (pipespec.tasklib.storage.confine);
files are named in messages as the spec names them (`data/raw/x.csv`), never by where they
resolve to. The IR cache could carry an absolute path or `..`, so the check-time rule is
applied here again.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.readers import (BadRows, NotPlainJson, parquet_file, read_csv, read_cursor, read_jsonl,
                                           read_jsonl_arrow, without_values)
from pipespec.tasklib.data import documents
from pipespec.tasklib.data.transform import BatchFile
from pipespec.tasklib.data.sql_render import render_query

log = logging.getLogger(__name__)

SUFFIXES = {"jsonl": (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"), "csv": (".csv", ".csv.gz"),
            "parquet": (".parquet", ".pq"), **documents.SUFFIXES}


def extract(ctx: RunContext, *, pipeline: str, spec_dir: str, publishes: str, source: dict,
            transforms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read one source (local files under `spec_dir`, S3, Snowflake or any common-sql database) into
    Parquet; `only_new` sources read what changed since this pipeline's last publication of `publishes`.
    `transforms` (the spec's, in order) are applied on the way, in this process (data.transform's
    `apply`): no task, process start-up or Parquet round trip per transform.

    Returns the data's reference (storage.Ref as a dict) with `files`, `new_files` and `watermark`."""
    name = source["name"]
    bad_rows = BadRows(source.get("on_bad_rows", "fail"))
    output = storage.work_uri(ctx, pipeline, f"{name}.parquet")
    with tempfile.TemporaryDirectory(prefix="pipespec-extract-") as spool_dir:
        pieces = _Pieces(Path(spool_dir))
        stats = _read_source(SourceRead(source, _params(source), ctx, bad_rows, pieces, spec_dir, pipeline, publishes))
        ref = pieces.write(output, name, transforms or [])
    log.info("source %s: %d rows from %d file(s), %d bad row(s) skipped -> %s",
             name, ref.rows, stats["files"], bad_rows.count, ref.uri)
    return {**ref.to_dict(), "source": name, **stats, "bad_rows": bad_rows.count}


# --- the source contract: built-in and plugin source types alike ------------------------------

@dataclass(frozen=True)
class SourceRead:
    """What a source type's implementation gets: the spec's source, its validated params (defaults
    filled), the run, and where malformed rows go (`bad_rows.reject(origin, line, reason)`: it stops
    or counts as the spec's `on_bad_rows` says, so a bad row is reported, never silently lost).

    The implementation either yields Arrow tables or record batches (a plugin's usual way; each is
    unified, transformed and written like a built-in's) or adds chunks with `add` itself and
    returns its statistics (`files`, `new_files`, `watermark`), as the file sources do."""

    source: dict[str, Any]
    params: dict[str, Any]
    ctx: RunContext
    bad_rows: BadRows
    pieces: "_Pieces"
    spec_dir: str
    pipeline: str
    publishes: str

    @property
    def name(self) -> str:
        """The source's name in the spec."""
        return str(self.source["name"])

    def add(self, chunk: Any, origin: str | None = None) -> None:
        """Add one Arrow table or record batch; `origin` names it in messages (default: the source)."""
        import pyarrow as pa

        if isinstance(chunk, pa.RecordBatch):
            chunk = pa.Table.from_batches([chunk])
        if not isinstance(chunk, pa.Table):
            raise TypeError(f"source `{self.name}` (type `{self.source['type']}`) produced a "
                            f"{type(chunk).__name__}, not an Arrow table or record batch")
        self.pieces.add_table(origin or f"source `{self.name}`", chunk)


def _params(source: dict[str, Any]) -> dict[str, Any]:
    """The source type's params (every key but the common ones), validated by its plugin's model."""
    from pipespec.schemas import plugins
    from pipespec.schemas.models.data import SOURCE_KEYS

    settings = {k: v for k, v in source.items() if k not in SOURCE_KEYS}
    try:
        return plugins.check_params("source", source["type"], settings).model_dump()
    except (PermissionError, ValueError) as error:
        raise type(error)(f"source `{source['name']}`: {error}") from None


def _read_source(read: SourceRead) -> dict[str, Any]:
    """Run the source type's registered implementation; its statistics, or none for a query or plugin."""
    from pipespec.tasklib.steps import plugin_implementation

    produced = plugin_implementation("source", read.source["type"])(read)
    if isinstance(produced, dict):
        return produced
    for chunk in produced or ():
        read.add(chunk)
    return {"files": 0, "new_files": 0, "watermark": None}


# --- files ------------------------------------------------------------------

@dataclass(frozen=True)
class _File:
    uri: str  # for messages: s3://bucket/key or an absolute local path
    path: str  # within the filesystem
    mtime: datetime


def read_files(read: SourceRead) -> dict:
    """The `local` and `s3` source types: every file of the format at or under the path or prefix."""
    from pipespec.schemas.data_access import data_uri_problem, local_path_problem

    source, spec_dir, pieces, bad_rows = {**read.source, **read.params}, read.spec_dir, read.pieces, read.bad_rows
    pipeline, publishes = read.pipeline, read.publishes

    if source["type"] == "s3":
        location, problem, roots = source["uri"], data_uri_problem(source["uri"]), []
    else:
        location, problem, roots = source["path"], local_path_problem(source["path"]), [Path(spec_dir).resolve()]
    if problem:
        raise PermissionError(f"source `{source['name']}`: {problem}")
    conn_id = source.get("conn_id")
    filesystem, files = _list(location, spec_dir, roots, source["format"], conn_id, _request_timeout_s(source),
                              recursive=source.get("recursive", True))
    since = _previous_watermark(publishes, pipeline, source["name"]) if source.get("only_new") else None
    chosen = [f for f in files if since is None or f.mtime > since]
    if since is not None:
        log.info("source %s: %d of %d file(s) modified after %s", source["name"], len(chosen), len(files),
                 since.isoformat())
    for file in chosen:
        _read_file(filesystem, file, source["format"], pieces, bad_rows)
    newest = max((f.mtime for f in chosen), default=since)
    return {"files": len(chosen), "new_files": len(chosen), "watermark": newest.isoformat() if newest else None}


def _request_timeout_s(source: dict) -> float:
    """No single request may outlast the source's whole `timeout`: a stalled S3 then fails the try
    (which Airflow retries) instead of hanging past it."""
    if not source.get("timeout"):
        return storage.REQUEST_TIMEOUT_S
    from pipespec.schemas.models.common import parse_duration

    return min(storage.REQUEST_TIMEOUT_S, parse_duration(source["timeout"]))


@dataclass(frozen=True)
class _Location:
    """A file source's path or prefix, opened: its filesystem, its path in it, the roots its files
    must resolve inside (None: real S3), and how messages name a path (as the spec does)."""

    spec_name: str  # the source's `uri` or `path`, as the spec writes it
    filesystem: Any
    path: str
    allowed: list[Path] | None

    def label(self, path: str) -> str:
        # Messages name files as the spec does (s3://..., data/raw/x.csv): also when demo mode maps S3
        # to local disk, and never by where a local path resolves to.
        return self.spec_name.rstrip("/") + path[len(self.path.rstrip("/")):]


def _open(location: str, spec_dir: str, roots: list[Path], conn_id: str | None,
          request_timeout_s: float) -> _Location:
    """Open a source's `location` (its URI, or its path relative to `spec_dir`); local files must lie
    in `roots` or the platform's data roots once their symlinks are resolved."""
    s3 = location.startswith("s3://")
    where = location if s3 else str(Path(spec_dir, location))
    if s3:
        allowed = storage.roots_for(where, roots)  # None: real S3, nothing local to confine
    else:
        # A local source reads its spec's folder and the platform's data roots, never pipespec's storage
        # or work areas: those hold every team's Assets (a symlink there would skip the bucket policy).
        allowed = [*roots, *storage.data_roots()]
        storage.confine(where, allowed, location)  # first, to name the path as the spec does
    filesystem, path = storage.filesystem(where, conn_id, request_timeout_s, extra_roots=roots)
    return _Location(location, filesystem, path, allowed)


def _missing(place: _Location, conn_id: str | None) -> FileNotFoundError:
    from pyarrow import fs

    if place.filesystem.type_name == "s3":
        bucket = place.path.split("/", 1)[0]
        if place.filesystem.get_file_info(bucket).type == fs.FileType.NotFound:
            return FileNotFoundError(f"{place.spec_name}: bucket `{bucket}` does not exist (or the connection "
                                     f"`{conn_id}` cannot see it)")
        return FileNotFoundError(f"{place.spec_name}: no object at or under this prefix")
    return FileNotFoundError(f"{place.spec_name}: no such file or directory")


def _list(location: str, spec_dir: str, roots: list[Path], fmt: str, conn_id: str | None,
          request_timeout_s: float, recursive: bool = True) -> tuple[Any, list[_File]]:
    """The files of a source: the one named, or every `fmt` file under a directory/prefix (only those
    directly in it unless `recursive`), sorted."""
    from pyarrow import fs

    place = _open(location, spec_dir, roots, conn_id, request_timeout_s)
    filesystem, path = place.filesystem, place.path
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File:
        return filesystem, [_File(place.label(path), path, _utc(info.mtime))]
    if info.type == fs.FileType.NotFound:
        raise _missing(place, conn_id)
    base = path.rstrip("/")
    listed = filesystem.get_file_info(fs.FileSelector(path, recursive=recursive))
    files = [_File(place.label(i.path), i.path, _utc(i.mtime)) for i in listed
             if i.type == fs.FileType.File and _wanted(i.path[len(base):], fmt)]
    if place.allowed is not None:  # a file in a listed folder may be a symlink out of it
        for file in files:
            storage.confine(file.path, place.allowed, file.uri)
    return filesystem, sorted(files, key=lambda f: f.path)


def folders(source: dict[str, Any], spec_dir: str) -> tuple[list[tuple[str, str | None]], bool]:
    """The folders directly under a file source's path or prefix (hidden and `_` folders skipped, as
    in listing files), sorted, each with why it may not be read (a symlink out of the allowed roots)
    or None; and whether files of its format lie directly in it."""
    from pyarrow import fs

    location = source["uri"] if source["type"] == "s3" else source["path"]
    roots = [] if source["type"] == "s3" else [Path(spec_dir).resolve()]
    conn_id = source.get("conn_id")
    place = _open(location, spec_dir, roots, conn_id, _request_timeout_s(source))
    info = place.filesystem.get_file_info(place.path)
    if info.type == fs.FileType.File:
        raise ValueError(f"source `{source['name']}`: per_folder needs a folder or prefix, and {location} is a file")
    if info.type == fs.FileType.NotFound:
        raise _missing(place, conn_id)
    base = place.path.rstrip("/")
    found, top_files = [], False
    for entry in place.filesystem.get_file_info(fs.FileSelector(place.path, recursive=False)):
        name = entry.path[len(base):].strip("/")
        if entry.type == fs.FileType.Directory and name and name[0] not in "._":
            found.append((name, _confinement_problem(entry.path, place.allowed)))
        elif entry.type == fs.FileType.File and _wanted(name, source["format"]):
            top_files = True
    return sorted(found), top_files


def _confinement_problem(path: str, allowed: list[Path] | None) -> str | None:
    if allowed is None:
        return None
    try:
        storage.confine(path, allowed, path)
    except PermissionError:
        return "it leads outside the folders pipespec may read (symlinks are followed)"
    return None


def _wanted(relative: str, fmt: str) -> bool:
    # Hidden and underscore files/directories (_SUCCESS, .tmp-*, _LATEST) are never data.
    parts = [p for p in relative.split("/") if p]
    return bool(parts) and not any(p[0] in "._" for p in parts) and parts[-1].lower().endswith(SUFFIXES[fmt])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _previous_watermark(publishes: str, pipeline: str, name: str) -> datetime | None:
    from pipespec.tasklib.published import latest_of

    previous = latest_of(publishes, pipeline)  # never another pipeline's watermarks
    mark = previous.manifest.get("sources", {}).get(name, {}).get("watermark") if previous else None
    return _utc(datetime.fromisoformat(mark)) if mark else None


def _read_file(filesystem: Any, file: _File, fmt: str, pieces: "_Pieces", bad_rows: BadRows) -> None:
    compressed = file.path.endswith(".gz")  # what `compression="detect"` decompresses
    if fmt in documents.SUFFIXES:  # images or documents: one file, or an archive of them (zip needs seeking)
        with filesystem.open_input_file(file.path) as handle:
            for chunk in documents.read_files(fmt, handle, file.uri, bad_rows):
                pieces.add_table(file.uri, chunk)
        return
    if fmt == "parquet":
        with filesystem.open_input_file(file.path) as handle:
            schema = parquet_file(handle, file.uri).schema_arrow
        pieces.add_parquet(file.uri, schema, filesystem, file.path)
        return
    if fmt == "jsonl":
        mark = pieces.mark()
        try:
            with filesystem.open_input_stream(file.path, compression="detect") as stream:
                for chunk in read_jsonl_arrow(stream, file.uri):
                    pieces.add_table(file.uri, chunk, compress=compressed)
            return
        except NotPlainJson as why:
            log.info("%s: read line by line (%s)", file.uri, why)
            pieces.rollback(mark)
    reader = read_jsonl if fmt == "jsonl" else read_csv
    with filesystem.open_input_stream(file.path, compression="detect") as stream:
        for chunk in reader(stream, file.uri, bad_rows):
            pieces.add_table(file.uri, chunk, compress=compressed)


# --- queries ----------------------------------------------------------------

def read_query(read: SourceRead) -> None:
    """The `sql` and `snowflake` source types: the rows of the query, through the connection's hook."""
    source, ctx, pieces = {**read.source, **read.params}, read.ctx, read.pieces
    name, kind = source["name"], source["type"]
    query = render_query(source["query"], ctx, name)
    hook = _sql_hook(kind, source.get("conn_id") or "snowflake_default")
    origin = f"source `{name}`"
    connection = hook.get_conn()
    try:
        cursor = _streaming_cursor(connection)
        try:
            cursor.execute(query)
            for chunk in read_cursor(cursor, origin, fold_upper_names=kind == "snowflake"):
                pieces.add_table(origin, chunk)
        finally:
            cursor.close()
    finally:
        connection.close()


def _streaming_cursor(connection: Any) -> Any:
    """A cursor whose `fetchmany` streams. psycopg (2 and 3) fetch the whole result into memory on
    `execute` unless the cursor is named, i.e. server-side; other drivers stream already."""
    if type(connection).__module__.split(".")[0] in ("psycopg", "psycopg2"):
        return connection.cursor(name=f"pipespec_{uuid.uuid4().hex[:12]}")
    return connection.cursor()


def _sql_hook(kind: str, conn_id: str) -> Any:
    """The DB-API hook of the source's Airflow connection (credentials never come from the spec)."""
    if kind == "snowflake":
        from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

        return SnowflakeHook(snowflake_conn_id=conn_id)
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    try:
        hook = connection.get_hook()
    except Exception as error:  # Airflow raises a bare AirflowException for an unknown type
        raise ValueError(f"connection `{conn_id}` has type `{connection.conn_type}`, for which no hook is "
                         f"installed ({error}); install the Airflow provider for it") from None
    if not isinstance(hook, DbApiHook):
        raise ValueError(f"connection `{conn_id}` (type `{connection.conn_type}`) is not a SQL database: "
                         f"its hook {type(hook).__name__} has no DB-API")
    return hook


# --- aligning and writing -------------------------------------------------------

@dataclass(frozen=True)
class _Piece:
    origin: str
    schema: Any
    batches: Callable[[], Iterator[Any]]
    rows: int | None  # a chunk in this task's local spool (cheap to read again); None: a source's own file


class _Pieces:
    """Chunks of one source and their unified schema; written in one streaming pass."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.pieces: list[_Piece] = []
        self.types: dict[str, tuple[Any, str]] = {}  # column -> (type, the origin that set it)

    def add_table(self, origin: str, table: Any, compress: bool = False) -> None:
        """Spool one chunk. Uncompressed, so that a read is a memory map and no copy: `dedupe` reads the
        pieces up to three times, and lz4 cost each JSON-lines source ~0.05 s of 0.9 at 250k rows. A
        chunk of a compressed file (`compress`) is spooled with lz4: a small `.gz` of repeated lines
        must not fill the worker's disk with its expanded rows."""
        import pyarrow as pa

        path = self.spool / f"{len(self.pieces):08d}.arrow"
        options = pa.ipc.IpcWriteOptions(compression="lz4" if compress else None)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
            writer.write_table(table)

        def batches() -> Iterator[Any]:
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                for index in range(reader.num_record_batches):
                    yield reader.get_batch(index)

        self._add(_Piece(origin, table.schema, batches, table.num_rows))

    def add_parquet(self, origin: str, schema: Any, filesystem: Any, path: str) -> None:
        def batches() -> Iterator[Any]:
            with filesystem.open_input_file(path) as handle:
                yield from storage.iter_batches(parquet_file(handle, origin))

        self._add(_Piece(origin, schema, batches, None))

    def mark(self) -> tuple[int, dict[str, tuple[Any, str]]]:
        """Where the pieces stand now, for `rollback`."""
        return len(self.pieces), dict(self.types)

    def rollback(self, mark: tuple[int, dict[str, tuple[Any, str]]]) -> None:
        """Forget the pieces added since `mark` (a file read again another way); their spool
        files are overwritten by the next ones."""
        count, types = mark
        del self.pieces[count:]
        self.types = dict(types)

    def _add(self, piece: _Piece) -> None:
        import pyarrow as pa

        names = piece.schema.names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{piece.origin}: column(s) {', '.join(f'`{n}`' for n in repeated)} appear more than once")
        for field in piece.schema:
            known = self.types.get(field.name)
            if known is None:
                self.types[field.name] = (field.type, piece.origin)
            elif known[0] != field.type:
                try:
                    merged = pa.unify_schemas([pa.schema([(field.name, known[0])]), pa.schema([field])],
                                              promote_options="permissive").field(0).type
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    raise ValueError(f"column `{field.name}` is {known[0]} in {known[1]} but {field.type} in "
                                     f"{piece.origin}; make the files agree (or cast before loading)") from None
                self.types[field.name] = (merged, known[1])
        self.pieces.append(piece)

    def write(self, uri: str, source: str, transforms: list[dict[str, Any]]) -> storage.Ref:
        """Stream every piece, cast to the unified schema and transformed, into `uri`."""
        import pyarrow as pa

        from pipespec.tasklib.data.transform import Rows, apply

        schema = pa.schema([(name, type_) for name, (type_, _) in self.types.items()])
        # `dedupe` and `sample` read the spooled pieces again; a source's own Parquet file (on S3,
        # perhaps) is read once, into their spool.
        spooled = all(piece.rows is not None for piece in self.pieces)
        rows = Rows(schema, self._aligned(schema), _PiecesFile(self, schema) if spooled else None)
        if transforms and schema.names:  # no columns (no files, none new): nothing to check or change
            rows = apply(rows, transforms, source, self.spool)
        ref = storage.write_batches(rows.batches, rows.schema, uri, source=source)
        rows.log_counts(source)
        return ref

    def _aligned(self, schema: Any) -> Iterator[Any]:
        import pyarrow as pa

        for piece in self.pieces:
            for batch in piece.batches():
                try:
                    columns = [_column(batch, f) for f in schema]
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    raise ValueError(f"{piece.origin}: cannot convert to the source's common schema "
                                     f"({without_values(error)})") from None
                yield pa.RecordBatch.from_arrays(columns, schema=schema)


class _PiecesFile(BatchFile):
    """Spooled pieces, aligned: `dedupe` and `sample` read a source up to three times (keys, checks,
    chosen rows), and read it here from the spool the pieces are in already, rather than from a
    second spool of the whole source (~0.1 s of 0.9 per 250k-row source)."""

    def __init__(self, pieces: _Pieces, schema: Any) -> None:
        super().__init__(schema, sum(piece.rows or 0 for piece in pieces.pieces))
        self.pieces = pieces

    def batches(self, columns: list[str] | None) -> Iterator[Any]:
        import pyarrow as pa

        schema = self.schema_arrow  # only the columns asked for are aligned (cast) and read
        return self.pieces._aligned(schema if columns is None else pa.schema([schema.field(c) for c in columns]))


def _column(batch: Any, field: Any) -> Any:
    import pyarrow as pa

    index = batch.schema.get_field_index(field.name)
    if index < 0:
        return pa.nulls(batch.num_rows, field.type)
    column = batch.column(index)
    return column if column.type == field.type else column.cast(field.type)
