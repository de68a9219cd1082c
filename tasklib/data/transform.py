"""`data.transform`: one spec transform applied to one source (a mapped task instance).

Each transform is a vectorised pyarrow.compute operation; the only per-row
Python is the Luhn check of card-shaped numbers in `redact_pii` (see pii.py).
The output replaces the input Ref; extract's extra keys (`watermark`, `files`,
...) pass through untouched for the join and the manifest.

Memory stays flat in the number of rows: row-local transforms run one batch
at a time; `dedupe` and `sample` first choose row numbers (from 8-byte row
hashes of the key columns, or from the row count), then stream the batches,
keeping the chosen rows of each.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)

# normalize_text collapses whitespace: ASCII (RE2's \s lacks \v) and Unicode spaces (NBSP, em space...).
# Only what changes is matched: runs of two or more, or one character other than a plain space
# (replacing every single space with itself made this 4x slower).
_OTHER_SPACE = r"\t\n\r\f\x0b\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
WHITESPACE_RUN = rf"[ {_OTHER_SPACE}]{{2,}}|[{_OTHER_SPACE}]"


# Row-local transforms run one Parquet batch at a time (memory bounded by the batch, not the
# source): every plugin's, and the built-ins but these two, which choose which rows to keep from the
# whole file.
WHOLE_SOURCE = ("dedupe", "sample")


def transform(ctx: RunContext, *, pipeline: str, transform: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Apply one transform (dedupe, filter, redact_pii, ...) to one source's output (`ref`).

    Returns the transformed data's reference (storage.Ref as a dict), named by its source."""
    import tempfile

    from pipespec.tasklib import storage

    name, _ = parse(transform)
    source = ref.get("source") or f"source_{max(ctx.map_index, 0)}"
    output = storage.work_uri(ctx, pipeline, f"{source}.parquet")
    with storage.open_parquet(ref) as file, tempfile.TemporaryDirectory(prefix="pipespec-transform-") as spool:
        if not file.schema_arrow.names:  # no files, or none new (`only_new`): no columns to check, no rows to change
            log.info("source %s: %s has nothing to do, the source is empty", source, name)
            return dict(ref)
        rows = apply(Rows(file.schema_arrow, storage.iter_batches(file), file), [transform], source, Path(spool))
        written = storage.write_batches(rows.batches, rows.schema, output, source=source)
    rows.log_counts(source)
    return {**ref, **written.to_dict()}


def parse(spec: dict[str, Any]) -> tuple[str, Any]:
    """(name, arguments) of one spec transform (`{"dedupe": {"key": [...]}}`), the arguments validated
    by the transform's params model (built-in or an installed plugin's); ValueError if unknown."""
    from pipespec.schemas import plugins

    if not (isinstance(spec, dict) and len(spec) == 1):
        raise ValueError(f"a transform is one `name: settings` mapping, not {spec!r}")
    (name, args), = spec.items()
    try:
        return name, plugins.check_params("transform", name, args if args is not None else {}).model_dump()
    except plugins.PluginError as error:
        raise ValueError(str(error)) from None


class Rows:
    """A stream of record batches with their schema; `file`, if any, is where they can be read again
    (a Parquet file, or a BatchFile: extract's spooled pieces): `dedupe` and `sample` choose row
    numbers from a file, so they read it rather than spool the stream."""

    def __init__(self, schema: Any, batches: Iterator[Any], file: Any = None) -> None:
        self.schema, self.batches, self.file = schema, batches, file
        self.counts: list[tuple[str, "_Counter", "_Counter"]] = []  # (transform, rows in, rows out)

    def log_counts(self, source: str) -> None:
        """One line per transform applied: how many rows it kept (known once the stream was consumed)."""
        for name, rows_in, rows_out in self.counts:
            log.info("source %s: %s kept %d of %d rows", source, name, rows_out.rows, rows_in.rows)


class _Counter:
    def __init__(self) -> None:
        self.rows = 0

    def count(self, batches: Iterable[Any]) -> Iterator[Any]:
        for batch in batches:
            self.rows += batch.num_rows
            yield batch


def apply(rows: Rows, transforms: list[dict[str, Any]], source: str, spool: Any) -> Rows:
    """`rows` with every transform applied in order, in one process and one pass where possible.

    Row-local transforms (all but `WHOLE_SOURCE`) run batch by batch on the stream: a plugin's is a
    function `(table, params, source) -> table`, with its params validated and defaults filled. `dedupe` and `sample` need
    the whole source first: the stream so far is spooled to a local, uncompressed Arrow IPC file in
    the folder `spool` (unless it can be read again from a file), then its chosen rows stream on.
    Columns and types are checked on an empty table first, so an empty source is checked too."""
    from pipespec.tasklib.steps import plugin_implementation

    for index, (name, args) in enumerate([parse(spec) for spec in transforms]):
        step = plugin_implementation("transform", name)
        rows_in, rows_out = _Counter(), _Counter()
        if name not in WHOLE_SOURCE:
            schema_out = step(rows.schema.empty_table(), args, source).schema
            counts = rows.counts
            rows = Rows(schema_out, rows_out.count(_each_batch(step, args, source, rows.schema,
                                                               rows_in.count(rows.batches), name, schema_out)))
        else:
            file = rows.file if rows.file is not None else _spooled(rows, spool / f"{index:02d}-{name}.arrow")
            rows_in.rows = file.metadata.num_rows
            chosen = step(file, args, source)
            counts = rows.counts
            rows = Rows(rows.schema, rows_out.count(take_rows(file, chosen)))
        rows.counts = [*counts, (name, rows_in, rows_out)]
    return rows


def _each_batch(step: Callable[[Any, Any, str], Any], args: Any, source: str, schema: Any,
                batches: Iterator[Any], name: str = "", schema_out: Any = None) -> Iterator[Any]:
    import pyarrow as pa

    for batch in batches:
        table = step(pa.Table.from_batches([batch], schema), args, source)
        if schema_out is not None and table.schema != schema_out:  # a plugin's output must keep one schema
            try:
                table = table.cast(schema_out)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                raise ValueError(f"source `{source}`: transform `{name}` returned columns {table.schema.names} "
                                 f"({', '.join(str(t) for t in table.schema.types)}) for a batch, but "
                                 f"{schema_out.names} for an empty table: a transform's output columns and "
                                 f"types must not depend on the rows") from None
        yield from table.to_batches()


def _spooled(rows: Rows, path: Any) -> "BatchFile":
    """The stream written to a local Arrow IPC file (uncompressed: it is read on this machine, up
    to three times), opened."""
    import pyarrow as pa

    from pipespec.tasklib.storage import write_behind

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, rows.schema) as writer:
        count = write_behind(rows.batches, writer.write_batch)
    return SpooledFile(path, rows.schema, count)


class BatchFile:
    """Record batches that can be read more than once, read the way `dedupe` and `sample` read a
    Parquet file: `schema_arrow`, `metadata.num_rows`, `iter_batches` (only the columns asked
    for, at most `batch_size` rows at a time) and `read`."""

    def __init__(self, schema: Any, rows: int) -> None:
        from types import SimpleNamespace

        self.schema_arrow, self.metadata = schema, SimpleNamespace(num_rows=rows)

    def batches(self, columns: list[str] | None) -> Iterator[Any]:
        raise NotImplementedError

    def iter_batches(self, batch_size: int, columns: list[str] | None = None,
                     use_threads: bool = False) -> Iterator[Any]:
        for batch in self.batches(columns):
            if columns is not None:
                batch = batch.select(columns)
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)

    def read(self, columns: list[str] | None = None) -> Any:
        import pyarrow as pa

        from pipespec.tasklib.storage import BATCH_ROWS

        schema = self.schema_arrow if columns is None else pa.schema([self.schema_arrow.field(c) for c in columns])
        return pa.Table.from_batches(list(self.iter_batches(BATCH_ROWS, columns)), schema)


class SpooledFile(BatchFile):
    """A local Arrow IPC file, read through a memory map per batch: no decoding and no copy (a Parquet
    spool was decoded on each of dedupe's three reads), and a batch's pages count in RSS only while
    that batch lives (5-8 MB less at the peak of a Parquet source's extract than reading copies)."""

    def __init__(self, path: Any, schema: Any, rows: int) -> None:
        super().__init__(schema, rows)
        self.path = path

    def batches(self, columns: list[str] | None) -> Iterator[Any]:
        import pyarrow as pa

        options = pa.ipc.IpcReadOptions(use_threads=False, included_fields=None if columns is None else
                                        [self.schema_arrow.get_field_index(c) for c in columns])
        with pa.memory_map(str(self.path)) as source:
            count = pa.ipc.open_file(source).num_record_batches
        for index in range(count):
            # A map per batch, no copy: its pages count in RSS only while the batch lives (one map for
            # the whole file would keep every page read so far).
            with pa.memory_map(str(self.path)) as source:
                yield pa.ipc.open_file(source, options=options).get_batch(index)


def take_rows(file: Any, rows: Any) -> Iterator[Any]:
    """The chosen rows of the file, one batch at a time: `rows` is either row numbers (ascending,
    0-based) or a boolean mask with one entry per row of the file."""
    import numpy as np

    from pipespec.tasklib import storage

    start = 0
    for batch in storage.iter_batches(file):
        if rows.dtype == np.bool_:
            yield batch.filter(rows[start:start + batch.num_rows])
        else:
            low, high = np.searchsorted(rows, [start, start + batch.num_rows])
            yield batch.take(rows[low:high] - start)
        start += batch.num_rows


# --- shared with the join --------------------------------------------

def require_columns(table: Any, columns: Iterable[str], *, source: str, what: str) -> None:
    """Fail, naming the source, the column and the columns there are, when a column is missing."""
    available = table.column_names
    for column in columns:
        if column not in available:
            # Warehouses upper-case unquoted names (Snowflake's TEXT): try the case-insensitive match first.
            close = [name for name in available if name.lower() == column.lower()] \
                or difflib.get_close_matches(column, available, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise ValueError(f"source `{source}`: {what} names column `{column}`, which does not exist; "
                             f"columns: {', '.join(available) or '(none)'}{hint}")


def _text_columns(table: Any, columns: list[str], *, source: str, what: str) -> list[str]:
    """The named columns that hold text; all-null columns are skipped (nothing to change)."""
    import pyarrow as pa

    require_columns(table, columns, source=source, what=what)
    text = []
    for column in dict.fromkeys(columns):
        kind = table.schema.field(column).type
        if pa.types.is_null(kind):
            continue
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(f"source `{source}`: {what} needs text, but column `{column}` is {kind}")
        text.append(column)
    return text


def _replace(table: Any, column: str, values: Any) -> Any:
    return table.set_column(table.column_names.index(column), column, values)


# --- the transforms ---------------------------------------------------------

# dedupe sorts the row hashes of this many rows at a time (~40 bytes a row while sorting).
PARTITION_ROWS = 1 << 18


def dedupe(file: Any, args: dict[str, Any], source: str) -> Any:
    """The rows to keep, as a boolean mask over the file's rows: the first row of each key (null keys
    count as equal).

    Rows are told apart by a 64-bit hash of their keys, computed batch by batch. The hashes (and
    their row numbers) are split by their top bits into partitions of about PARTITION_ROWS rows,
    spooled to local files when there is more than one, and each partition is sorted on its own:
    memory stays at one partition plus one byte a row, however long the source. Then every row
    dropped as a repeat is checked against the row it repeats by a second 64-bit hash under a secret
    key drawn for this dedupe (the first is public: rows that share it can be made at will); should two
    different keys ever share the first hash, or should a key type not be exactly hashable (floats),
    the keys are grouped in memory instead.
    """
    import numpy as np

    from pipespec.tasklib.data.row_hash import exactly_comparable

    keys = list(dict.fromkeys(args["key"]))
    schema = file.schema_arrow
    require_columns(schema.empty_table(), keys, source=source, what="transform `dedupe`")
    rows = file.metadata.num_rows
    if rows == 0:
        return np.zeros(0, dtype=bool)
    if not all(exactly_comparable(schema.field(key).type) for key in keys):
        return _first_rows_in_memory(file.read(columns=keys), keys, source)
    keep, repeats, repeated = _first_of_each_hash(file, keys, rows)
    if not _repeats_equal_their_firsts(file, keys, repeats, repeated):
        return _first_rows_in_memory(file.read(columns=keys), keys, source)
    return keep


def _first_of_each_hash(file: Any, keys: list[str], rows: int) -> tuple[Any, Any, Any]:
    """(mask of the first row of each hash; the other rows, ascending; for each, the first row with its hash)."""
    import tempfile

    import numpy as np

    from pipespec.tasklib import storage
    from pipespec.tasklib.data.row_hash import row_hashes

    bits = min(8, max(0, int(np.ceil(np.log2(max(rows / PARTITION_ROWS, 1))))))
    count = 1 << bits
    keep = np.zeros(rows, dtype=bool)
    found: list[tuple[Any, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pipespec-dedupe-") as spool:
        parts: list[list[Any]] = [[] for _ in range(count)]  # in memory: (hashes, rows) per batch
        files = [Path(spool, f"{index:03d}") for index in range(count)] if count > 1 else []
        start = 0
        for batch in storage.iter_batches(file, keys):
            hashes = row_hashes(batch, keys)
            numbers = np.arange(start, start + len(hashes), dtype=np.int64)
            start += len(hashes)
            if not files:
                parts[0].append((hashes, numbers))
                continue
            which = (hashes >> np.uint64(64 - bits)).astype(np.intp)
            order = np.argsort(which, kind="stable")  # row order kept within each partition
            bounds = np.searchsorted(which[order], np.arange(count + 1))
            for index, path in enumerate(files):
                chosen = order[bounds[index]:bounds[index + 1]]
                if len(chosen):
                    with path.open("ab") as out:
                        np.stack([hashes[chosen].view(np.int64), numbers[chosen]]).T.copy().tofile(out)
        for index in range(count):
            if files:
                if not files[index].exists():
                    continue
                pairs = np.fromfile(files[index], dtype=np.int64).reshape(-1, 2)
                hashes, numbers = pairs[:, 0].view(np.uint64), pairs[:, 1]
            elif parts[0]:
                hashes = np.concatenate([h for h, _ in parts[0]])
                numbers = np.concatenate([n for _, n in parts[0]])
                parts[0].clear()
            else:
                continue
            found.append(_firsts_in(hashes, numbers, keep))
    repeats = np.concatenate([np.empty(0, np.int64), *(r for r, _ in found)])
    repeated = np.concatenate([np.empty(0, np.int64), *(f for _, f in found)])
    order = np.argsort(repeats)
    return keep, repeats[order], repeated[order]


def _firsts_in(hashes: Any, numbers: Any, keep: Any) -> tuple[Any, Any]:
    """Mark in `keep` the first row number of each hash (numbers ascend within a partition, and the
    sort is stable); return the other rows and, for each, the first row with its hash."""
    import numpy as np

    order = np.argsort(hashes, kind="stable")
    hashes, numbers = hashes[order], numbers[order]
    del order
    starts = np.empty(len(hashes), dtype=bool)
    starts[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=starts[1:])
    keep[numbers[starts]] = True
    positions = np.flatnonzero(starts)
    others = np.flatnonzero(~starts)
    return numbers[others], numbers[positions[np.searchsorted(positions, others, side="right") - 1]]


def _repeats_equal_their_firsts(file: Any, keys: list[str], repeats: Any, repeated: Any) -> bool:
    """Whether each row in `repeats` (ascending) has the keys of the row `repeated` names for it
    (always an earlier row), by a second hash of the keys under a key drawn now (row_hash.check_hashes).

    Streams the key columns once, hashing only those rows, and holding 8 bytes per first row that
    has repeats: holding their keys grew the extract of a 2.5M-row source by ~10 MB."""
    import numpy as np

    from pipespec.tasklib import storage
    from pipespec.tasklib.data.row_hash import check_hashes, new_check_key

    if len(repeats) == 0:
        return True
    key = new_check_key()
    firsts = np.unique(repeated)
    first_hashes = np.zeros(len(firsts), dtype=np.uint64)
    start = 0
    for batch in storage.iter_batches(file, keys):
        low, high = np.searchsorted(firsts, [start, start + batch.num_rows])
        if high > low:
            first_hashes[low:high] = check_hashes(batch.take(firsts[low:high] - start), keys, key)
        low, high = np.searchsorted(repeats, [start, start + batch.num_rows])
        if high > low:
            mine = check_hashes(batch.take(repeats[low:high] - start), keys, key)
            if not np.array_equal(mine, first_hashes[np.searchsorted(firsts, repeated[low:high])]):
                return False
        start += batch.num_rows
    return True


def _first_rows_in_memory(table: Any, keys: list[str], source: str) -> Any:
    """Row numbers of the first row of each key, grouping the key columns in memory."""
    import numpy as np
    import pyarrow as pa

    row = "__pipespec_row"
    numbered = table.append_column(row, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    try:
        firsts = numbered.group_by(keys, use_threads=False).aggregate([(row, "min")]).column(f"{row}_min")
    except pa.ArrowNotImplementedError as error:
        raise ValueError(f"source `{source}`: transform `dedupe` cannot compare keys {keys}: {error}") from None
    return np.sort(firsts.to_numpy())


def drop_empty(table: Any, columns: list[str], source: str) -> Any:
    """Drop rows where any column is null, or text that is empty or only whitespace, or empty bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    require_columns(table, columns, source=source, what="transform `drop_empty`")
    keep = None
    for column in dict.fromkeys(columns):
        values = table.column(column)
        present = pc.is_valid(values)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            present = pc.and_(present, pc.not_equal(pc.utf8_trim_whitespace(values), ""))
        elif pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
            present = pc.and_(present, pc.greater(pc.binary_length(values), 0))
        present = pc.fill_null(present, False)
        keep = present if keep is None else pc.and_(keep, present)
    return table.filter(keep)


def select(table: Any, columns: list[str], source: str) -> Any:
    """The table with only these columns."""
    require_columns(table, columns, source=source, what="transform `select`")
    return table.select(list(dict.fromkeys(columns)))


def rename(table: Any, mapping: dict[str, str], source: str) -> Any:
    """The table with columns renamed; ValueError if two would share a name."""
    require_columns(table, mapping, source=source, what="transform `rename`")
    names = [mapping.get(name, name) for name in table.column_names]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise ValueError(f"source `{source}`: transform `rename` would make two columns named `{name}`; "
                             f"columns: {', '.join(table.column_names)}")
    return table.rename_columns(names)


def filter_rows(table: Any, text: str, source: str) -> Any:
    """The rows for which the filter expression is true."""
    from pipespec.schemas import expressions

    try:
        # Language first (so `__import__` is refused as such), then names, then types against the data.
        require_columns(table, expressions.referenced_columns(text), source=source, what=f"transform `filter` `{text}`")
        return expressions.filter_table(table, text)
    except expressions.ExpressionError as error:
        raise ValueError(f"source `{source}`: transform `filter` `{text}`: {error}") from None


def normalize_text(table: Any, args: dict[str, Any], source: str) -> Any:
    """The table with its text columns lowercased, stripped and whitespace collapsed, as asked."""
    import pyarrow.compute as pc

    for column in _text_columns(table, args["columns"], source=source, what="transform `normalize_text`"):
        values = table.column(column)
        if args.get("collapse_whitespace", True):
            values = pc.replace_substring_regex(values, WHITESPACE_RUN, " ")
        if args.get("strip", True):
            values = pc.utf8_trim_whitespace(values)
        if args.get("lowercase", True):
            values = pc.utf8_lower(values)
        table = _replace(table, column, values)
    return table


def redact_pii(table: Any, columns: list[str], source: str) -> Any:
    """The table with personal data redacted in these columns."""
    from pipespec.tasklib.data import pii

    for column in _text_columns(table, columns, source=source, what="transform `redact_pii`"):
        table = _replace(table, column, pii.redact(table.column(column)))
    return table


def sample(file: Any, args: dict[str, Any], source: str) -> Any:
    """round(fraction * rows) row numbers, ascending; the same seed and row count give the same rows."""
    import numpy as np

    rows = file.metadata.num_rows
    count = round(rows * args["fraction"])
    return np.sort(np.random.default_rng(args.get("seed", 0)).choice(rows, size=count, replace=False))
