"""Count, check quality and drift, and decide whether the data is worth publishing.

The gate passes when there are enough records, quality holds, and there is a
reason to retrain: enough *new* records since the last publication, or drift
against the reference beyond the spec's threshold. Every block says why, with
numbers, so the alert and the task log can explain it.
"""

from __future__ import annotations

import math
from typing import Any

from ..context import RunContext
from ..published import latest
from ..storage import filesystem, read_table

LINEAGE_COLUMNS = {"_source"}  # added by the join; not part of a record's identity


def measure(ctx: RunContext, *, pipeline: str, spec_dir: str, publishes: str, threshold: dict,
            quality: dict | None, drift: dict | None, dataset: dict) -> dict[str, Any]:
    table = read_table(dataset)
    previous = latest(publishes)
    previous_table = read_table(previous.data) if previous else None
    new_rows = _new_rows(table, previous_table)
    failures = _quality_failures(table, quality or {})
    drift_scores, drifted = _drift(table, drift, previous_table)
    reasons = _block_reasons(table.num_rows, new_rows, threshold, failures, drifted, drift is not None)
    return {
        "rows": table.num_rows, "new_rows": new_rows,
        "min_records": threshold["min_records"], "min_new_records": threshold["min_new_records"],
        "previous_run": previous.manifest.get("run_id") if previous else None,
        "quality_failures": failures, "drift": drift_scores, "drifted": drifted,
        "rows_by_source": {name: info.get("rows") for name, info in dataset.get("sources", {}).items()},
        "passed": not reasons, "reason": "; ".join(reasons) or "all gates passed",
    }


def gate(ctx: RunContext, *, pipeline: str, spec_dir: str, publishes: str, measurement: dict) -> dict[str, str]:
    return {"decision": "pass" if measurement["passed"] else "blocked", "reason": measurement["reason"]}


def _block_reasons(rows: int, new_rows: int, threshold: dict, failures: list[str], drifted: bool,
                   drift_configured: bool) -> list[str]:
    reasons = []
    if rows < threshold["min_records"]:
        reasons.append(f"{rows} records, fewer than min_records {threshold['min_records']}")
    reasons += failures
    if new_rows < threshold["min_new_records"] and not drifted:
        why = " and no drift" if drift_configured else ""
        reasons.append(f"{new_rows} new records, fewer than min_new_records {threshold['min_new_records']}{why}")
    return reasons


def _identity_columns(table: Any) -> list[str]:
    return [name for name in table.column_names if name not in LINEAGE_COLUMNS]


def _row_hashes(table: Any) -> Any:
    import pandas as pd

    frame = table.select(_identity_columns(table)).to_pandas()
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _new_rows(table: Any, previous: Any | None) -> int:
    """Records not in the last published data (by content, whichever source they came from)."""
    if previous is None or previous.num_rows == 0:
        return table.num_rows
    if _identity_columns(previous) != _identity_columns(table):
        return table.num_rows  # the shape changed: everything counts as new
    import numpy as np

    return int((~np.isin(_row_hashes(table), _row_hashes(previous))).sum())


def _quality_failures(table: Any, quality: dict) -> list[str]:
    import pyarrow.compute as pc

    failures = []
    for column in quality.get("required_columns", []):
        if column not in table.column_names:
            failures.append(f"required column `{column}` is missing")
    for column, limit in quality.get("max_null_rate", {}).items():
        if column not in table.column_names:
            failures.append(f"column `{column}` (max_null_rate) is missing")
            continue
        rate = table.column(column).null_count / table.num_rows if table.num_rows else 0.0
        if rate > limit:
            failures.append(f"column `{column}` is {rate:.1%} null, above max_null_rate {limit:.1%}")
    for column, bounds in quality.get("ranges", {}).items():
        if column not in table.column_names:
            failures.append(f"column `{column}` (ranges) is missing")
            continue
        low, high = pc.min_max(table.column(column)).values()
        if bounds.get("min") is not None and low.is_valid and low.as_py() < bounds["min"]:
            failures.append(f"column `{column}` has {low.as_py()} below min {bounds['min']}")
        if bounds.get("max") is not None and high.is_valid and high.as_py() > bounds["max"]:
            failures.append(f"column `{column}` has {high.as_py()} above max {bounds['max']}")
    return failures


def _drift(table: Any, drift: dict | None, previous: Any | None) -> tuple[dict[str, float], bool]:
    if not drift:
        return {}, False
    reference = _reference_table(drift["reference"]) if drift.get("reference") else previous
    if reference is None:
        return {}, False  # nothing to compare with yet: the first publication is not drift
    scores = {}
    for column in drift["columns"]:
        if column not in table.column_names or column not in reference.column_names:
            raise ValueError(f"drift column `{column}` is missing from the "
                             f"{'new' if column not in table.column_names else 'reference'} data")
        current, base = table.column(column).to_numpy(zero_copy_only=False), \
            reference.column(column).to_numpy(zero_copy_only=False)
        scores[column] = psi(base, current) if drift["method"] == "psi" else ks_pvalue(base, current)
    if drift["method"] == "psi":
        return scores, any(value > drift["threshold"] for value in scores.values())
    return scores, any(value < drift["threshold"] for value in scores.values())


def _reference_table(uri: str) -> Any:
    """A drift reference: a published Asset (its latest data) or a single Parquet file."""
    import pyarrow.parquet as pq

    published = latest(uri)
    if published is not None:
        return read_table(published.data)
    filesystem_, path = filesystem(uri)
    return pq.read_table(path, filesystem=filesystem_)


def psi(reference: Any, current: Any, bins: int = 10) -> float:
    """Population stability index: numeric columns by reference deciles, others by category."""
    import numpy as np

    if reference.dtype.kind in "iuf" and current.dtype.kind in "iuf":
        reference, current = reference[~np.isnan(reference.astype(float))], current[~np.isnan(current.astype(float))]
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        expected = np.histogram(reference, edges)[0]
        actual = np.histogram(current, edges)[0]
    else:
        categories = sorted(set(map(str, reference)) | set(map(str, current)))
        expected = np.array([np.sum(reference.astype(str) == c) for c in categories])
        actual = np.array([np.sum(current.astype(str) == c) for c in categories])
    expected = np.clip(expected / max(expected.sum(), 1), 1e-4, None)
    actual = np.clip(actual / max(actual.sum(), 1), 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_pvalue(reference: Any, current: Any) -> float:
    """Two-sample Kolmogorov-Smirnov test p-value (asymptotic), numeric columns."""
    import numpy as np

    a, b = np.sort(reference.astype(float)), np.sort(current.astype(float))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return 1.0
    values = np.concatenate([a, b])
    statistic = float(np.max(np.abs(np.searchsorted(a, values, "right") / len(a)
                                    - np.searchsorted(b, values, "right") / len(b))))
    effective = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * (k * lam) ** 2) for k in range(1, 101))
    return float(min(max(p, 0.0), 1.0))
