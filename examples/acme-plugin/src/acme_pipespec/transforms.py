"""`acme_clip`: a row-local transform under pipespec's transform contract: `(table, params, source) ->
table`, called one batch at a time (and once on an empty table, to check the columns before any row)."""

from __future__ import annotations

from typing import Any


def clip(table: Any, params: dict[str, Any], source: str) -> Any:
    import pyarrow.compute as pc
    import pyarrow.types as t

    column = params["column"]
    if column not in table.column_names:
        raise ValueError(f"source `{source}`: transform `acme_clip`: no column `{column}` "
                         f"(columns: {', '.join(table.column_names)})")
    values = table.column(column)
    if not (t.is_integer(values.type) or t.is_floating(values.type)):
        raise ValueError(f"source `{source}`: transform `acme_clip`: `{column}` is {values.type}, not a number")
    values = values.cast("float64")
    if params["min"] is not None:
        values = pc.max_element_wise(values, params["min"])
    if params["max"] is not None:
        values = pc.min_element_wise(values, params["max"])
    return table.set_column(table.schema.get_field_index(column), column, values)
