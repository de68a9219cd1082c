"""The params models of Acme's plugins: what `pipespec check` validates in a spec."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # Unknown keys and strings where numbers belong are spec mistakes, reported by `pipespec check`.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GradientBoostingParams(_Strict):
    """`acme_gradient_boosting`: sklearn.ensemble.GradientBoostingClassifier."""

    n_estimators: int = Field(100, ge=1, le=5000, description="Boosting stages.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="Shrinks each tree's contribution.")
    max_depth: int = Field(3, ge=1, le=32, description="Depth of each tree.")
    subsample: float = Field(1.0, gt=0, le=1, description="Fraction of rows each tree sees.")
    seed: int = Field(0, description="random_state: the same data trains the same model.")
    positive_label: str | int | None = Field(None, description="The positive class (binary metrics); default: the "
                                                               "larger label.")


class MinHoldoutRowsParams(_Strict):
    """`acme_min_holdout_rows`: no promotion decided on fewer holdout rows than this."""

    min_rows: int = Field(ge=1, description="Fewest holdout rows a promotion may be decided on.")


class HttpJsonlParams(_Strict):
    """`acme_http_jsonl`: JSON Lines from an HTTP API. The host (and any credentials) come from the Airflow
    connection, never from the spec, which names only the connection and a path on it."""

    conn_id: str = Field(description="Airflow HTTP connection of the API (its host, auth and headers).")
    endpoint: str = Field("", pattern=r"^(/[A-Za-z0-9._~\-]+)*/?$", description="Path on the connection's host.")
    batch_rows: int = Field(10_000, ge=1, le=1_000_000, description="Rows per Arrow chunk (bounds memory).")


class ClipParams(_Strict):
    """`acme_clip`: bound a numeric column's values to [min, max]."""

    column: str = Field(description="The numeric column to clip.")
    min: float | None = Field(None, description="Values below become this.")
    max: float | None = Field(None, description="Values above become this.")

    @model_validator(mode="after")
    def _a_bound(self) -> "ClipParams":
        if self.min is None and self.max is None:
            raise ValueError("acme_clip needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"acme_clip: min {self.min} is above max {self.max}")
        return self


class PagerParams(_Strict):
    """`acme_pager`: open an event in Acme's on-call pager."""

    conn_id: str = Field("acme_pager", description="Airflow HTTP connection of the pager's events API.")
    service: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="The pager service to page.")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="How urgent the page is.")
