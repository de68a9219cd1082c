"""`data.transform`: one spec transform applied to one source (a mapped task instance).

Each transform is a vectorised pyarrow.compute operation on the whole table; the
only per-row Python is the Luhn check of card-shaped numbers in `redact_pii`
(see pii.py). The output replaces the input Ref; extract's extra keys
(`watermark`, `files`, ...) pass through untouched for the join and the manifest.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from tasklib.context import RunContext

log = logging.getLogger(__name__)

# normalize_text collapses whitespace: ASCII (RE2's \s lacks \v) and Unicode spaces (NBSP, em space...).
# Only what changes is matched: runs of two or more, or one character other than a plain space
# (replacing every single space with itself made this 4x slower).
_OTHER_SPACE = r"\t\n\r\f\x0b\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
WHITESPACE_RUN = rf"[ {_OTHER_SPACE}]{{2,}}|[{_OTHER_SPACE}]"


# Row-local transforms run one Parquet batch at a time (memory bounded by the batch, not the
# source); dedupe and sample need every row at once.
STREAMED = ("drop_empty", "select", "rename", "filter", "normalize_text", "redact_pii")


def transform(ctx: RunContext, *, pipeline: str, spec_dir: str, publishes: str,
              transform: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa

    from tasklib import storage

    if len(transform) != 1 or next(iter(transform)) not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; transforms: {', '.join(TRANSFORMS)}")
    (name, args), = transform.items()
    step = TRANSFORMS[name]
    source = ref.get("source") or f"source_{max(ctx.map_index, 0)}"
    output = storage.work_uri(ctx, pipeline, f"{source}.parquet")
    with storage.open_parquet(ref) as file:
        rows_in = file.metadata.num_rows
        if name in STREAMED:
            schema = file.schema_arrow
            # Once on no rows first: checks columns and types even when the source is empty,
            # and gives the output schema.
            result_schema = step(schema.empty_table(), args, source).schema
            results = (step(pa.Table.from_batches([batch], schema), args, source)
                       for batch in file.iter_batches(batch_size=storage.BATCH_ROWS))
            written = storage.write_batches((batch for table in results for batch in table.to_batches()),
                                            result_schema, output, source=source)
        else:
            written = storage.write_table(step(file.read(), args, source), output, source=source)
    log.info("source %s: %s kept %d of %d rows", source, name, written.rows, rows_in)
    return {**ref, **written.to_dict()}


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

def dedupe(table: Any, args: dict[str, Any], source: str) -> Any:
    """Keep the first row of each key (null keys count as equal); row order is kept."""
    import numpy as np
    import pyarrow as pa

    keys = list(dict.fromkeys(args["key"]))
    require_columns(table, keys, source=source, what="transform `dedupe`")
    if table.num_rows == 0:
        return table
    row = "__pipespec_row"
    numbered = table.select(keys).append_column(row, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    try:
        firsts = numbered.group_by(keys, use_threads=False).aggregate([(row, "min")]).column(f"{row}_min")
    except pa.ArrowNotImplementedError as error:
        raise ValueError(f"source `{source}`: transform `dedupe` cannot compare keys {keys}: {error}") from None
    return table.take(np.sort(firsts.to_numpy()))


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
    require_columns(table, columns, source=source, what="transform `select`")
    return table.select(list(dict.fromkeys(columns)))


def rename(table: Any, mapping: dict[str, str], source: str) -> Any:
    require_columns(table, mapping, source=source, what="transform `rename`")
    names = [mapping.get(name, name) for name in table.column_names]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise ValueError(f"source `{source}`: transform `rename` would make two columns named `{name}`; "
                             f"columns: {', '.join(table.column_names)}")
    return table.rename_columns(names)


def filter_rows(table: Any, text: str, source: str) -> Any:
    from . import expressions

    try:
        # Language first (so `__import__` is refused as such), then names, then types against the data.
        require_columns(table, expressions.referenced_columns(text), source=source, what=f"transform `filter` `{text}`")
        return expressions.filter_table(table, text)
    except expressions.ExpressionError as error:
        raise ValueError(f"source `{source}`: transform `filter` `{text}`: {error}") from None


def normalize_text(table: Any, args: dict[str, Any], source: str) -> Any:
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
    from . import pii

    for column in _text_columns(table, columns, source=source, what="transform `redact_pii`"):
        table = _replace(table, column, pii.redact(table.column(column)))
    return table


def sample(table: Any, args: dict[str, Any], source: str) -> Any:
    """round(fraction * rows) rows, in their original order; the same seed and input give the same rows."""
    import numpy as np

    count = round(table.num_rows * args["fraction"])
    chosen = np.random.default_rng(args.get("seed", 0)).choice(table.num_rows, size=count, replace=False)
    return table.take(np.sort(chosen))


TRANSFORMS: dict[str, Callable[[Any, Any, str], Any]] = {
    "dedupe": dedupe,
    "drop_empty": drop_empty,
    "select": select,
    "rename": rename,
    "filter": filter_rows,
    "normalize_text": normalize_text,
    "redact_pii": redact_pii,
    "sample": sample,
}
