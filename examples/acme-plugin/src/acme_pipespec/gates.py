"""`acme_min_holdout_rows`: a gate under pipespec's gate contract: `(scores, params) -> (passed, reason)`,
where `scores` is what evaluation returned and `params` the gate's validated params model."""

from __future__ import annotations

from typing import Any

from acme_pipespec.params import MinHoldoutRowsParams


def min_holdout_rows(scores: dict[str, Any], params: MinHoldoutRowsParams) -> tuple[bool, str]:
    rows = int(scores.get("holdout_rows") or 0)
    if rows < params.min_rows:
        return False, f"the holdout has {rows} rows; a promotion needs at least {params.min_rows}"
    return True, f"the holdout has {rows} rows (at least {params.min_rows})"
