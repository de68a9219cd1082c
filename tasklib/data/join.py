"""`data.join`: combine the per-source tables into one dataset.

- `union` stacks rows, streaming one source batch at a time. Schemas are
  aligned: the output has every column any source has (first-seen order); a
  source without a column gets nulls there;
  types widen where Arrow can do so without loss of meaning (int64 + double ->
  double, string + large_string -> large_string, null + anything -> anything);
  other mixes (int64 vs string) are an error naming the column and the sources.
  A `_source` column records which source each row came from, so lineage
  survives per row in the published data (a source that already has a
  `_source` column is an error rather than silently overwritten).
- `inner` / `left` join the sources in spec order on the `on` columns. A
  non-key column present on both sides keeps its name on the left and gets
  `_<source>` appended on the right. Rows come out in a deterministic order
  (left row order, then right row order), so a rerun writes the same bytes.
  A hash join needs its inputs in memory, so these read whole tables.

The result Ref carries `sources` (each source's Ref as it arrived: rows, hash,
URI, extract's watermark and files) for the published manifest, and for a union
`rows_by_source`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext

from pipespec.tasklib.data.transform import require_columns

SOURCE_COLUMN = "_source"
_ROW = "__pipespec_row"


def join(ctx: RunContext, *, pipeline: str, join: dict[str, Any], refs: Any) -> dict[str, Any]:
    """Union or key-join every source's output (`refs`, one per mapped source) into one Parquet file.

    Returns the joined dataset's reference (storage.Ref as a dict) with per-source `sources` counts."""
    arrived = [dict(ref) for ref in refs]  # may be Airflow's lazy sequence of mapped outputs: iterate once
    if not arrived:
        raise ValueError("join: no sources arrived (every mapped transform was skipped?)")
    names = [ref.get("source") or f"source_{index}" for index, ref in enumerate(arrived)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"join: source names must be unique; repeated: {', '.join(repeated)}")
    kind, on = join.get("type", "union"), list(join.get("on") or [])
    if kind not in ("union", "inner", "left"):
        raise ValueError(f"join: unknown type `{kind}`; use union, inner or left")

    output = storage.work_uri(ctx, pipeline, "joined.parquet")
    rows, schemas = {}, []
    for name, ref in zip(names, arrived):
        with storage.open_parquet(ref) as file:
            rows[name] = file.metadata.num_rows
            schemas.append(file.schema_arrow.remove_metadata())
    if kind == "union":
        schema, batches = union(arrived, names, schemas)
        written = storage.write_batches(batches, schema, output)
    else:
        tables = [storage.read_table(ref).replace_schema_metadata(None) for ref in arrived]
        written = storage.write_table(key_join(tables, names, kind, on), output)
    result = {**written.to_dict(), "join": kind,
              "sources": {name: {k: v for k, v in ref.items() if k != "source"} for name, ref in zip(names, arrived)}}
    if kind == "union":
        result["rows_by_source"] = rows
    return result


# --- union ------------------------------------------------------------------

def union(refs: list[dict], names: list[str], schemas: list[Any]) -> tuple[Any, Iterator[Any]]:
    """The union's schema, and its record batches: one source batch in memory at a time."""
    import pyarrow as pa

    for name, schema in zip(names, schemas):
        if SOURCE_COLUMN in schema.names:
            raise ValueError(f"join `union`: source `{name}` already has a column `{SOURCE_COLUMN}`, which the union "
                             f"adds to record each row's source; rename it (transform `rename`) or drop it (`select`)")
    aligned = aligned_schema(schemas, names)

    def batches() -> Iterator[Any]:
        for name, ref, schema in zip(names, refs, schemas):
            # One source's file open at a time: a ParquetFile keeps its last row group's
            # buffers (~one batch) until it is closed, which would add up over the sources.
            with storage.open_parquet(ref) as file:
                for batch in storage.iter_batches(file):
                    table = _conform(pa.Table.from_batches([batch], schema), name, aligned)
                    origin = pa.repeat(pa.scalar(name, pa.string()), table.num_rows)
                    yield from table.append_column(SOURCE_COLUMN, pa.chunked_array([origin])).to_batches()

    return aligned.append(pa.field(SOURCE_COLUMN, pa.string())), batches()


def aligned_schema(schemas: list[Any], names: list[str]) -> Any:
    """Every column of every source, in first-seen order, each with a type all its sources can be cast to."""
    import pyarrow as pa

    fields: dict[str, Any] = {}
    seen_in: dict[str, list[str]] = {}  # column -> the sources that decided its type so far
    for name, schema in zip(names, schemas):
        for field in schema:
            if field.name not in fields:
                fields[field.name], seen_in[field.name] = field.with_nullable(True), [name]
                continue
            current = fields[field.name]
            try:
                merged = pa.unify_schemas([pa.schema([current]), pa.schema([field])],
                                          promote_options="permissive").field(0)
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise ValueError(
                    f"join `union`: column `{field.name}` is {current.type} in source(s) "
                    f"{', '.join(f'`{s}`' for s in seen_in[field.name])} but {field.type} in source `{name}`; "
                    f"make the types agree in the source (a cast in its query, or a `select` without it)") from None
            fields[field.name] = merged.with_nullable(True)
            seen_in[field.name].append(name)
    return pa.schema(list(fields.values()))


def _conform(table: Any, name: str, schema: Any) -> Any:
    """`table` with exactly `schema`'s columns: cast where types widen, nulls where a column is missing."""
    import pyarrow as pa

    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, field.type)], type=field.type))
            continue
        values = table.column(field.name)
        if values.type != field.type:
            try:
                values = values.cast(field.type)  # safe cast: a value that does not fit is an error, not garbage
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ValueError(f"join `union`: source `{name}`: column `{field.name}` ({values.type}) "
                                 f"cannot become {field.type}: {error}") from None
        columns.append(values)
    return pa.Table.from_arrays(columns, schema=schema)


# --- inner / left -------------------------------------------------------------

def key_join(tables: list[Any], names: list[str], kind: str, on: list[str]) -> Any:
    """An inner or left join of the tables on `on`, rows in source order."""
    import numpy as np
    import pyarrow as pa

    if not on:
        raise ValueError(f"join `{kind}` needs key columns: `join: {{type: {kind}, on: [id]}}`")
    for name, table in zip(names, tables):
        require_columns(table, on, source=name, what=f"join `{kind}`")

    def numbered(table: Any, index: int) -> Any:
        return table.append_column(f"{_ROW}{index}", pa.array(np.arange(table.num_rows, dtype=np.int64)))

    result, left_names = numbered(tables[0], 0), names[0]
    for index, (name, table) in enumerate(zip(names[1:], tables[1:]), start=1):
        left, right = _matching_keys(result, table, on, kind, left_names, name)
        try:
            result = left.join(numbered(right, index), keys=on, join_type="inner" if kind == "inner" else "left outer",
                               right_suffix=f"_{name}")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            raise ValueError(f"join `{kind}` of {left_names} with `{name}` on {on}: {error}") from None
        left_names = f"{left_names}+{name}"
    # Hash joins emit rows in no fixed order; sort by where each row came from.
    rows = [f"{_ROW}{index}" for index in range(len(tables))]
    result = result.sort_by([(row, "ascending") for row in rows])
    return result.drop_columns(rows)


def _matching_keys(left: Any, right: Any, on: list[str], kind: str, left_name: str, right_name: str) -> tuple[Any, Any]:
    """Both sides with key columns of one type (int32 vs int64 widen); incompatible key types are an error."""
    import pyarrow as pa

    for key in on:
        a, b = left.schema.field(key), right.schema.field(key)
        if a.type == b.type:
            continue
        try:
            common = pa.unify_schemas([pa.schema([a]), pa.schema([b])], promote_options="permissive").field(0).type
            left = left.set_column(left.column_names.index(key), key, left.column(key).cast(common))
            right = right.set_column(right.column_names.index(key), key, right.column(key).cast(common))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise ValueError(f"join `{kind}`: key `{key}` is {a.type} in `{left_name}` but {b.type} "
                             f"in source `{right_name}`; make the types agree in the source") from None
    return left, right
