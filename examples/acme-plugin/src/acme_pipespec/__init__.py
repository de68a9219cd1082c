"""Acme's vetted pipespec plugins: a scikit-learn gradient-boosting model type and a gate.

This module is what the `pipespec.plugins` entry point names. It must stay light: `pipespec
check` imports it to read the params models, so it imports pydantic models only. The code that
trains and gates is named by `module:attribute` and imported only when a step runs.
"""

from __future__ import annotations

from pipespec.schemas.plugins import Plugin

from acme_pipespec.params import GradientBoostingParams, MinHoldoutRowsParams

PLUGINS: list[Plugin] = [
    Plugin("model", "acme_gradient_boosting", GradientBoostingParams, "acme_pipespec.gbm:GRADIENT_BOOSTING",
           description="scikit-learn gradient-boosted trees over numeric columns, saved as an MLflow model.",
           task="classification", backends=frozenset({"local"})),
    Plugin("gate", "acme_min_holdout_rows", MinHoldoutRowsParams, "acme_pipespec.gates:min_holdout_rows",
           description="Veto a promotion decided on too small a holdout."),
]
