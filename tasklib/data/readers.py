"""Format readers: one input (a file stream or a database cursor) in, Arrow chunks out.

Every reader yields bounded chunks (at most `batch_rows` rows), so memory never
grows with the size of the input. Malformed rows go to a `BadRows` policy, which
either stops with `<file>:<line>: ...` or counts and drops them, as the spec's
`on_bad_rows` says.

Errors never quote the data (DESIGN.md 4b): they reach task logs and failure alerts,
and a row may hold a secret. They say file, line and why; Arrow's own messages,
which quote the offending value, go through `without_values`.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from pipespec.tasklib.storage import READ_BUFFER_BYTES

log = logging.getLogger(__name__)

BATCH_ROWS = 32_768
CSV_BLOCK_BYTES = 4 << 20  # pyarrow infers CSV column types from the first block
UTF8_BOM = b"\xef\xbb\xbf"


_QUOTED = re.compile(r"(['\"]).*\1", re.DOTALL)  # greedy: also a value that itself holds quotes


def without_values(error: BaseException | str) -> str:
    """An error message with every quoted value replaced: Arrow quotes the data it cannot convert
    (`Could not convert 'hunter2' with type str`)."""
    return _QUOTED.sub("<value>", str(error))


class BadRows:
    """What to do with a malformed row: raise (`fail`) or count and go on (`skip`)."""

    def __init__(self, policy: str = "fail") -> None:
        if policy not in ("fail", "skip"):
            raise ValueError(f"on_bad_rows must be `fail` or `skip`, not `{policy}`")
        self.policy = policy
        self.count = 0

    def reject(self, origin: str, line: int | None, reason: str) -> None:
        where = f"{origin}:{line}" if line is not None else origin
        if self.policy == "fail":
            raise ValueError(f"{where}: {reason} (set on_bad_rows: skip to drop such rows)")
        self.count += 1
        if self.count <= 10:  # enough to find the problem, without flooding the task log
            log.warning("skipped bad row %s: %s", where, reason)


def read_jsonl(stream: Any, origin: str, bad_rows: BadRows, batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """JSON Lines, parsed line by line so a bad line is reported with its number."""
    rows: list[dict] = []
    batch_start = 1
    for number, line in enumerate(io.BufferedReader(stream), start=1):
        if number == 1:
            line = line.removeprefix(UTF8_BOM)
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except json.JSONDecodeError as error:
            bad_rows.reject(origin, number, f"malformed JSON: {error.msg} (column {error.colno})")
            continue
        except UnicodeDecodeError as error:
            bad_rows.reject(origin, number, f"malformed JSON: not UTF-8 ({error.reason})")
            continue
        if not isinstance(value, dict):
            bad_rows.reject(origin, number, f"malformed JSON: expected an object, got {type(value).__name__}")
            continue
        rows.append(value)
        if len(rows) >= batch_rows:
            yield _rows_to_table(rows, origin, batch_start, number)
            rows, batch_start = [], number + 1
    if rows:
        yield _rows_to_table(rows, origin, batch_start, number)


class NotPlainJson(Exception):
    """pyarrow's JSON reader cannot give what `read_jsonl` would: read the file line by line instead."""


JSON_BLOCK_BYTES = 4 << 20


def read_jsonl_arrow(stream: Any, origin: str, block_bytes: int | None = None) -> Iterator[Any]:
    """JSON Lines parsed by pyarrow (about 5x faster than `read_jsonl`), for files it reads exactly
    as `read_jsonl` would; anything else raises NotPlainJson, so the caller reads the file again
    with `read_jsonl`, which reports bad lines by number. That is: any parse error, a line that is
    not an object, a repeated key, text that is not UTF-8, a byte-order mark after the first line,
    and strings pyarrow would turn into timestamps (json.loads keeps them text).

    The stream is cut into blocks of whole lines here, and each block parsed on its own (its types
    inferred from its own rows, as `read_jsonl` infers them per batch): pyarrow's streaming reader
    reads up to 32 blocks ahead, so its memory grew with the file up to ~130 MB; this holds one."""
    import pyarrow as pa
    import pyarrow.json as pj

    size, rest, first = block_bytes or JSON_BLOCK_BYTES, b"", True
    while True:
        data = stream.read(size)
        cut = (rest + data).rfind(b"\n") if data else -1
        if data and cut < 0:  # one line longer than a block: keep reading
            rest += data
            continue
        block = rest + data
        block, rest = (block[:cut + 1], block[cut + 1:]) if data else (block, b"")
        if not first and (block.startswith(UTF8_BOM) or b"\n" + UTF8_BOM in block):
            raise NotPlainJson(f"{origin}: a byte-order mark after the first line")
        if block.strip():
            try:
                table = pj.read_json(pa.BufferReader(block), read_options=pj.ReadOptions(block_size=len(block) + 1))
                table.validate(full=True)  # pyarrow passes invalid UTF-8 through; json.loads refuses it
            except pa.ArrowInvalid as error:
                raise NotPlainJson(f"{origin}: {without_values(error)}") from None
            if _has_time(table.schema):
                raise NotPlainJson(f"{origin}: dates or times inferred")
            yield table
        first = False
        if not data:
            return


def _has_time(schema: Any) -> bool:
    import pyarrow as pa

    def timed(kind: Any) -> bool:
        if pa.types.is_temporal(kind):
            return True
        if pa.types.is_struct(kind):
            return any(timed(kind.field(i).type) for i in range(kind.num_fields))
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return timed(kind.value_type)
        return False

    return any(timed(field.type) for field in schema)


def _rows_to_table(rows: list[dict], origin: str, first_line: int, last_line: int) -> Any:
    import pyarrow as pa

    names = list(dict.fromkeys(key for row in rows for key in row))
    try:
        if names == list(rows[0]):
            return pa.Table.from_pylist(rows)
        # from_pylist takes its columns from the first row only: a key that first appears later would be lost.
        return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        # from_pylist does not say which column; find it, to give an error one can act on.
        for name in names:
            try:
                pa.array([row.get(name) for row in rows])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as column_error:
                raise ValueError(f"{origin}:{first_line}-{last_line}: column `{name}` mixes value types "
                                 f"({without_values(column_error)})") from None
        raise ValueError(f"{origin}:{first_line}-{last_line}: {without_values(error)}") from None


def read_csv(stream: Any, origin: str, bad_rows: BadRows, block_bytes: int | None = None) -> Iterator[Any]:
    """CSV with a header row, block by block; rows with the wrong number of fields are bad rows.

    The stream is cut into blocks of whole lines here (a value never spans lines: pyarrow's
    `newlines_in_values` is off), and each block parsed with the header and the column types of the
    first block, which is what pyarrow's streaming reader does, without its reading up to 32 blocks
    ahead (its memory grew with the file, up to ~130 MB). Line numbers count from the file's start."""
    import pyarrow as pa
    from pyarrow import csv

    size = block_bytes or CSV_BLOCK_BYTES
    pending: list[str] = []  # pyarrow reports a rejected row only as "parse error": keep ours
    header, types, before = b"", None, 0  # `before`: the file's lines ahead of the current block

    def on_invalid(row: Any) -> str:
        number = row.number + before - (1 if header else 0)
        reason = f"malformed CSV row: expected {row.expected_columns} fields, got {row.actual_columns}"
        if bad_rows.policy == "fail":
            pending.append(f"{origin}:{number}: {reason} (set on_bad_rows: skip to drop such rows)")
            return "error"
        bad_rows.reject(origin, number, reason)
        return "skip"

    for block in _line_blocks(stream, size):
        text = header + block
        try:
            # use_threads=False: only then does pyarrow know each row's line number.
            table = csv.read_csv(pa.BufferReader(text),
                                 read_options=csv.ReadOptions(use_threads=False, block_size=len(text) + 1),
                                 parse_options=csv.ParseOptions(invalid_row_handler=on_invalid),
                                 convert_options=csv.ConvertOptions(column_types=types))
        except pa.ArrowInvalid as error:
            if str(error) == "Empty CSV file":  # not even a header: no rows, no columns
                return
            if pending:
                raise ValueError(pending[0]) from None
            message = re.sub(r"Row #(\d+)", lambda m: f"Row #{int(m.group(1)) + before - (1 if header else 0)}",
                             without_values(error))
            hint = (" (column types are inferred from the first rows; quote the column or clean the value)"
                    if "conversion error" in str(error) else "")
            raise ValueError(f"{origin}: {message}{hint}") from None
        if types is None:  # the first block: a header and no rows still gives a schema (all-null columns)
            header = block[:block.find(b"\n") + 1].removeprefix(UTF8_BOM) if b"\n" in block else block + b"\n"
            types = table.schema
        if table.num_rows or before == 0:
            yield table
        before += block.count(b"\n")


def _line_blocks(stream: Any, size: int) -> Iterator[bytes]:
    """The stream in blocks of about `size` bytes, each ending at a line end (the last one: the rest)."""
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            if rest:
                yield rest
            return
        block = rest + data
        cut = block.rfind(b"\n")
        if cut < 0:  # one line longer than a block: keep reading
            rest = block
            continue
        rest = block[cut + 1:]
        yield block[:cut + 1]


def parquet_file(handle: Any, origin: str) -> Any:
    """The handle opened as Parquet; ValueError naming `origin` if it is not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer (pyarrow's default) would keep every column chunk read until the file is closed.
        return pq.ParquetFile(handle, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
    except pa.ArrowInvalid as error:
        raise ValueError(f"{origin}: not a readable Parquet file ({without_values(error)})") from None


def read_cursor(cursor: Any, origin: str, batch_rows: int = BATCH_ROWS, fold_upper_names: bool = False
                ) -> Iterator[Any]:
    """Rows of an executed DB-API cursor, `batch_rows` at a time (fetchmany: never the whole result).

    A query that returns no rows still yields one empty table, so the columns are known.
    """
    import pyarrow as pa

    rows = cursor.fetchmany(batch_rows)  # first: a server-side cursor describes its columns only then
    names = [_column_name(d[0], fold_upper_names) for d in cursor.description or ()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{origin}: the query returns column(s) {', '.join(duplicates)} more than once; "
                         "alias them (`select a.id as a_id, ...`)")
    if not rows:
        yield pa.table({name: pa.array([], pa.null()) for name in names})
    while rows:
        columns = list(zip(*rows))
        try:
            yield pa.Table.from_arrays([pa.array(column) for column in columns], names=names)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValueError(f"{origin}: cannot convert the query result to Arrow ({without_values(error)})") \
                from None
        rows = cursor.fetchmany(batch_rows)


def _column_name(name: str, fold_upper: bool) -> str:
    # Snowflake folds unquoted identifiers to upper case; the spec (and its transforms)
    # say `text`, not `TEXT`. Mixed-case names were quoted on purpose and are kept.
    return name.lower() if fold_upper and name.isupper() else name
