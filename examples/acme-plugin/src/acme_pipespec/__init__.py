"""Acme's vetted pipespec plugins: a scikit-learn gradient-boosting model type, a gate, an HTTP
JSON Lines source, a clipping transform and an on-call pager alert channel.

This module is what the `pipespec.plugins` entry point names. It must stay light: `pipespec
check` imports it to read the params models, so it imports pydantic models only. The code that
trains, gates, reads, transforms and pages is named by `module:attribute` and imported only when
a step runs.
"""

from __future__ import annotations

from pipespec.schemas.plugins import Plugin

from acme_pipespec.params import (ClipParams, GradientBoostingParams, HttpJsonlParams, MinHoldoutRowsParams,
                                  PagerParams)

PLUGINS: list[Plugin] = [
    Plugin("model", "acme_gradient_boosting", GradientBoostingParams, "acme_pipespec.gbm:GRADIENT_BOOSTING",
           description="scikit-learn gradient-boosted trees over numeric columns, saved as an MLflow model.",
           task="classification", backends=frozenset({"local"})),
    Plugin("gate", "acme_min_holdout_rows", MinHoldoutRowsParams, "acme_pipespec.gates:min_holdout_rows",
           description="Veto a promotion decided on too small a holdout."),
    Plugin("source", "acme_http_jsonl", HttpJsonlParams, "acme_pipespec.http_source:read_http_jsonl",
           description="JSON Lines from an HTTP API, through an Airflow HTTP connection."),
    Plugin("transform", "acme_clip", ClipParams, "acme_pipespec.transforms:clip",
           description="Bound a numeric column's values to [min, max]."),
    Plugin("alert_channel", "acme_pager", PagerParams, "acme_pipespec.pager:page",
           description="Open an event in Acme's on-call pager."),
]
