"""Count, check quality and drift, and decide whether the data is worth publishing.

The gate passes when there are enough records, quality holds, and there is a
reason to retrain: enough *new* records since the last publication, or drift
against the reference beyond the spec's threshold. Every block says why, with
numbers, so the alert and the task log can explain it.

Memory: nothing holds the rows. The row count comes from the Parquet footer; null
counts and ranges are gathered batch by batch from the columns they name; new
records are found by 64-bit row hashes (8 bytes a row, for the new data and for
the last publication); drift reads only its columns.
"""

from __future__ import annotations

from typing import Any

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.published import latest, latest_of
from pipespec.tasklib.storage import filesystem, iter_batches, open_parquet

LINEAGE_COLUMNS = {"_source"}  # added by the join; not part of a record's identity


def measure(ctx: RunContext, *, pipeline: str, publishes: str, threshold: dict,
            quality: dict | None, drift: dict | None, dataset: dict) -> dict[str, Any]:
    """Count records and new records, check quality and drift against the last publication.

    Returns {"rows", "new_rows", "passed", "reason", "decision", ...the quality and drift figures};
    "decision" ("pass" | "blocked") is what the data DAG branches on: `measure` is the gate."""
    previous = latest_of(publishes, pipeline)  # its own last publication, never another pipeline's
    with open_parquet(dataset) as file:
        rows = file.metadata.num_rows
        new_rows = _new_rows(file, previous)
        failures = _quality_failures(file, quality or {})
        drift_scores, drifted = _drift(file, drift, previous)
    reasons = _block_reasons(rows, new_rows, threshold, failures, drifted, drift is not None)
    return {
        "rows": rows, "new_rows": new_rows,
        "min_records": threshold["min_records"], "min_new_records": threshold["min_new_records"],
        "previous_run": previous.manifest.get("run_id") if previous else None,
        "quality_failures": failures, "drift": drift_scores, "drifted": drifted,
        "rows_by_source": {name: info.get("rows") for name, info in dataset.get("sources", {}).items()},
        "passed": not reasons, "reason": "; ".join(reasons) or "all gates passed",
        "decision": "blocked" if reasons else "pass",
    }


def _block_reasons(rows: int, new_rows: int, threshold: dict, failures: list[str], drifted: bool,
                   drift_configured: bool) -> list[str]:
    reasons = []
    if rows < threshold["min_records"]:
        reasons.append(f"{rows} records, fewer than min_records {threshold['min_records']}")
    reasons += failures
    if threshold.get("retrain_on") == "drift":
        if not drifted:
            reasons.append("no drift detected, and this pipeline retrains on drift only")
    elif new_rows < threshold["min_new_records"] and not drifted:
        why = " and no drift" if drift_configured else ""
        reasons.append(f"{new_rows} new records, fewer than min_new_records {threshold['min_new_records']}{why}")
    return reasons


def _identity_columns(file: Any) -> list[str]:
    return [name for name in file.schema_arrow.names if name not in LINEAGE_COLUMNS]


def _row_hashes(file: Any) -> Any:
    import numpy as np

    from pipespec.tasklib.data.row_hash import row_hashes

    columns = _identity_columns(file)
    return np.concatenate([np.empty(0, dtype=np.uint64)]
                          + [row_hashes(batch, columns) for batch in iter_batches(file, columns)])


def _new_rows(file: Any, previous: Any | None) -> int:
    """Records not in the last published data (by content, whichever source they came from)."""
    rows = file.metadata.num_rows
    if previous is None:
        return rows
    with open_parquet(previous.data) as old:
        if old.metadata.num_rows == 0 or _identity_columns(old) != _identity_columns(file):
            return rows  # nothing published yet, or the shape changed: everything counts as new
        published = _row_hashes(old)
    import numpy as np

    return int((~np.isin(_row_hashes(file), published)).sum())


def _quality_failures(file: Any, quality: dict) -> list[str]:
    names, rows = file.schema_arrow.names, file.metadata.num_rows
    null_limits = {column: limit for column, limit in quality.get("max_null_rate", {}).items() if column in names}
    ranges = {column: bounds for column, bounds in quality.get("ranges", {}).items() if column in names}
    nulls, low_high = _nulls_and_ranges(file, list(null_limits), list(ranges))
    failures = []
    for column in quality.get("required_columns", []):
        if column not in names:
            failures.append(f"required column `{column}` is missing")
    for column, limit in quality.get("max_null_rate", {}).items():
        if column not in names:
            failures.append(f"column `{column}` (max_null_rate) is missing")
            continue
        rate = nulls[column] / rows if rows else 0.0
        if rate > limit:
            failures.append(f"column `{column}` is {rate:.1%} null, above max_null_rate {limit:.1%}")
    for column, bounds in quality.get("ranges", {}).items():
        if column not in names:
            failures.append(f"column `{column}` (ranges) is missing")
            continue
        low, high = low_high[column]
        if bounds.get("min") is not None and low.is_valid and low.as_py() < bounds["min"]:
            failures.append(f"column `{column}` has {low.as_py()} below min {bounds['min']}")
        if bounds.get("max") is not None and high.is_valid and high.as_py() > bounds["max"]:
            failures.append(f"column `{column}` has {high.as_py()} above max {bounds['max']}")
    return failures


def _nulls_and_ranges(file: Any, null_columns: list[str], range_columns: list[str]) -> tuple[dict, dict]:
    """Null counts, and (min, max) Arrow scalars (null where there are no values), one batch at a time:
    the smallest of the batches' minimums is the minimum (nulls are skipped at both levels)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nulls = dict.fromkeys(null_columns, 0)
    lows: dict[str, list] = {column: [] for column in range_columns}
    highs: dict[str, list] = {column: [] for column in range_columns}
    columns = list(dict.fromkeys(null_columns + range_columns))
    if columns:
        for batch in iter_batches(file, columns):
            for column in null_columns:
                nulls[column] += batch.column(column).null_count
            for column in range_columns:
                low, high = pc.min_max(batch.column(column)).values()
                lows[column].append(low)
                highs[column].append(high)
    schema = file.schema_arrow
    low_high = {}
    for column in range_columns:
        kind = schema.field(column).type
        low_high[column] = (pc.min_max(pa.array(lows[column], kind))["min"],
                            pc.min_max(pa.array(highs[column], kind))["max"])
    return nulls, low_high


def _drift(file: Any, drift: dict | None, previous: Any | None) -> tuple[dict[str, float], bool]:
    if not drift:
        return {}, False
    if drift.get("reference"):
        reference = _reference_file(drift["reference"])
    elif previous is not None:
        reference = open_parquet(previous.data)
    else:
        return {}, False  # nothing to compare with yet: the first publication is not drift
    columns = list(dict.fromkeys(drift["columns"]))
    with reference:
        for column in columns:
            if column not in file.schema_arrow.names or column not in reference.schema_arrow.names:
                raise ValueError(f"drift column `{column}` is missing from the "
                                 f"{'new' if column not in file.schema_arrow.names else 'reference'} data")
        base_table = reference.read(columns=columns)
    current_table = file.read(columns=columns)
    scores = {}
    for column in columns:
        current, base = current_table.column(column).to_numpy(zero_copy_only=False), \
            base_table.column(column).to_numpy(zero_copy_only=False)
        scores[column] = psi(base, current) if drift["method"] == "psi" else ks_pvalue(base, current)
    if drift["method"] == "psi":
        return scores, any(value > drift["threshold"] for value in scores.values())
    return scores, any(value < drift["threshold"] for value in scores.values())


def _reference_file(uri: str) -> Any:
    """A drift reference, opened: a published Asset (its latest data) or a single Parquet file."""
    import pyarrow.parquet as pq

    published = latest(uri)
    if published is not None:
        return open_parquet(published.data)
    filesystem_, path = filesystem(uri)
    return pq.ParquetFile(path, filesystem=filesystem_)


def psi(reference: Any, current: Any, bins: int = 10) -> float:
    """Population stability index: numeric columns by reference deciles, others by category.

    PSI is the symmetric Kullback-Leibler divergence of the two binned distributions,
    sum((a - e) * ln(a / e)) = KL(a||e) + KL(e||a): scipy's `rel_entr` computes both
    terms. Empty bins are floored at 1e-4 so one empty bin does not make it infinite.
    """
    import numpy as np
    from scipy.special import rel_entr

    expected, actual = _binned(reference, current, bins)
    expected = np.clip(expected / max(expected.sum(), 1), 1e-4, None)
    actual = np.clip(actual / max(actual.sum(), 1), 1e-4, None)
    return float(np.sum(rel_entr(actual, expected) + rel_entr(expected, actual)))


def _binned(reference: Any, current: Any, bins: int) -> tuple[Any, Any]:
    """Counts of both samples in the reference's quantile bins (numbers) or per category (anything else)."""
    import numpy as np

    if reference.dtype.kind in "iuf" and current.dtype.kind in "iuf":
        reference, current = _finite(reference), _finite(current)
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        return np.histogram(reference, edges)[0], np.histogram(current, edges)[0]
    categories, codes = np.unique(np.concatenate([reference.astype(str), current.astype(str)]), return_inverse=True)
    return (np.bincount(codes[:len(reference)], minlength=len(categories)),
            np.bincount(codes[len(reference):], minlength=len(categories)))


def _finite(values: Any) -> Any:
    """The values as floats, without missing ones (an integer column with nulls arrives as objects)."""
    import numpy as np

    numbers = values.astype(float)
    return numbers[~np.isnan(numbers)]


def ks_pvalue(reference: Any, current: Any) -> float:
    """Two-sample Kolmogorov-Smirnov test p-value (scipy: exact for small samples, else asymptotic)."""
    from scipy.stats import ks_2samp

    a, b = _finite(reference), _finite(current)
    if len(a) == 0 or len(b) == 0:
        return 1.0
    return float(ks_2samp(a, b).pvalue)
