"""64-bit row hashes, one batch at a time: find rows seen before without holding the rows.

`measure` compares the new data with the last publication by these hashes (8
bytes a row instead of the rows); `dedupe` uses them to find candidate
duplicates, which it then checks by a second hash under a secret key
(`check_hashes`).

A row's hash depends on its values and column types only, never on how the rows
happen to be split into batches: nulls hash to one fixed value (pandas would
turn an integer column holding a null into floats, and hash `None` like the
string "None"), so the same row gives the same hash in any batch of any file.
"""

from __future__ import annotations

from typing import Any

NULL_HASH = 0x9E3779B97F4A7C15  # any fixed value; a null is not the empty string or zero
_MULTIPLIER = 0x100000001B3  # FNV-1a's prime: mixes one column's hash into the row's


def exactly_comparable(kind: Any) -> bool:
    """Types whose hashes are a function of the value Arrow compares (`==`, `equals`) and groups by:
    text, bytes, integers, booleans, dates and times. (Floats are not: -0.0 == 0.0, NaN != NaN.)"""
    import pyarrow as pa

    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            or _fixed_width_temporal(kind))


def _fixed_width_temporal(kind: Any) -> bool:
    """Dates, times, timestamps and durations: hashed by their integer storage (intervals are not)."""
    import pyarrow as pa

    return pa.types.is_temporal(kind) and not pa.types.is_interval(kind)


# Text is hashed through Python strings (pandas' hash_array): a few thousand rows at a time, so
# that the strings of a whole batch (~2x its Arrow size) never sit in the Python heap at once.
CHUNK_ROWS = 8_192


def row_hashes(table: Any, columns: list[str]) -> Any:
    """One uint64 per row of `table` (a Table or RecordBatch) over `columns`, in order."""
    return _combined(table, columns, column_hashes)


def new_check_key() -> str:
    """A fresh secret key for `check_hashes`: 16 characters, 96 random bits."""
    import secrets

    return secrets.token_urlsafe(12)


def check_hashes(table: Any, columns: list[str], key: str) -> Any:
    """A second 64-bit hash per row, keyed by a secret (`new_check_key`, drawn for each use): every value
    is hashed as text by SipHash-2-4 under that key. `row_hashes` is public, and its integer mix is
    invertible, so rows that agree in it can be made at will; someone who writes rows but cannot see
    this key cannot make two different rows agree in both, other than by chance (2^-64 a pair)."""
    return _combined(table, columns, lambda values: _hashed(values, key))


def _combined(table: Any, columns: list[str], hash_column: Any) -> Any:
    import numpy as np

    hashes = np.zeros(table.num_rows, dtype=np.uint64)
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk, part = table.slice(start, CHUNK_ROWS), hashes[start:start + CHUNK_ROWS]
        for position, column in enumerate(columns):
            part ^= hash_column(chunk.column(column))
            part *= np.uint64(_MULTIPLIER + 2 * position)  # wraps modulo 2**64, as meant
    return hashes


def column_hashes(values: Any) -> Any:
    """A uint64 hash per value of a column (nulls hash alike)."""
    return _hashed(values, None)


def _hashed(values: Any, key: str | None) -> Any:
    """Nulls hash to NULL_HASH; other values as `_public_data` gives them to pandas' default hash, or
    with a `key`, as `_text_data` gives them to SipHash under that key."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_null(values.type):
        return np.full(len(values), NULL_HASH, dtype=np.uint64)
    if key is None:
        hashed = pd.util.hash_array(_public_data(values), categorize=False)
    else:
        hashed = pd.util.hash_array(_text_data(values), hash_key=key, categorize=False)
    return np.where(valid, hashed, np.uint64(NULL_HASH))


def _public_data(values: Any) -> Any:
    """Text and bytes as objects, numbers and times as their integers (mixed by pandas, unkeyed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.fill_null(values, "").to_numpy(zero_copy_only=False)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pc.fill_null(values, b"").to_numpy(zero_copy_only=False)
    if _fixed_width_temporal(kind):
        return pc.fill_null(values.view(pa.int64() if kind.bit_width == 64 else pa.int32()), 0).to_numpy()
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(kind):
        return pc.fill_null(values, False).to_numpy(zero_copy_only=False)
    # decimals, intervals, lists, structs...: by their Python value's text (slow, but rare)
    return np.array([str(value) for value in values.to_pylist()], dtype=object)


def _text_data(values: Any) -> Any:
    """Every value as text or bytes, for SipHash: numbers in decimal, times by their integer storage."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pc.fill_null(values, b"").to_numpy(zero_copy_only=False)
    if _fixed_width_temporal(kind):
        values = values.view(pa.int64() if kind.bit_width == 64 else pa.int32())
    try:
        text = values if pa.types.is_string(kind) or pa.types.is_large_string(kind) else pc.cast(values, pa.string())
        return pc.fill_null(text, "").to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # decimals, lists, structs...: their Python text
        return np.array([str(value) for value in values.to_pylist()], dtype=object)
