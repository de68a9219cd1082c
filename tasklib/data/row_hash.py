"""64-bit row hashes, one batch at a time: find rows seen before without holding the rows.

`measure` compares the new data with the last publication by these hashes (8
bytes a row instead of the rows); `dedupe` uses them to find candidate
duplicates, which it then checks value by value.

A row's hash depends on its values and column types only, never on how the rows
happen to be split into batches: nulls hash to one fixed value (pandas would
turn an integer column holding a null into floats, and hash `None` like the
string "None"), so the same row gives the same hash in any batch of any file.
"""

from __future__ import annotations

from typing import Any

HASH_KEY = "0123456789123456"  # pandas' default SipHash key: the hashes `measure` compares across runs
CHECK_KEY = "pipespec-check-2"  # check_hashes': any other 16 bytes
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
    return _row_hashes(table, columns, HASH_KEY)


def check_hashes(table: Any, columns: list[str]) -> Any:
    """A second 64-bit hash per row, independent of `row_hashes` (another SipHash key for text,
    another mix for numbers): two rows equal in both are equal in 128 bits, beyond chance (~1e-26
    at 10M rows) and beyond a crafted pair (2^64 work against 2^32 for one hash)."""
    return _row_hashes(table, columns, CHECK_KEY)


def _row_hashes(table: Any, columns: list[str], hash_key: str) -> Any:
    import numpy as np

    hashes = np.zeros(table.num_rows, dtype=np.uint64)
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk, part = table.slice(start, CHUNK_ROWS), hashes[start:start + CHUNK_ROWS]
        for position, column in enumerate(columns):
            part ^= column_hashes(chunk.column(column), hash_key)
            part *= np.uint64(_MULTIPLIER + 2 * position)  # wraps modulo 2**64, as meant
    return hashes


def column_hashes(values: Any, hash_key: str = "") -> Any:
    """A uint64 hash per value of a column (nulls hash alike), keyed by `hash_key` (16 bytes)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    kind = values.type
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_null(kind):
        return np.full(len(values), NULL_HASH, dtype=np.uint64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        data = pc.fill_null(values, "").to_numpy(zero_copy_only=False)
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        data = pc.fill_null(values, b"").to_numpy(zero_copy_only=False)
    elif _fixed_width_temporal(kind):
        data = pc.fill_null(values.view(pa.int64() if kind.bit_width == 64 else pa.int32()), 0).to_numpy()
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        data = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
    elif pa.types.is_boolean(kind):
        data = pc.fill_null(values, False).to_numpy(zero_copy_only=False)
    else:  # decimals, intervals, lists, structs...: by their Python value's text (slow, but rare)
        data = np.array([str(value) for value in values.to_pylist()], dtype=object)
    hash_key = hash_key or HASH_KEY
    hashed = pd.util.hash_array(data, hash_key=hash_key, categorize=False)
    if hash_key != HASH_KEY and data.dtype != object:  # pandas mixes numbers with no key: mix again, keyed
        hashed = pd.util.hash_array(hashed ^ np.uint64(int.from_bytes(hash_key.encode()[:8], "little")),
                                    categorize=False)
    return np.where(valid, hashed, np.uint64(NULL_HASH))
