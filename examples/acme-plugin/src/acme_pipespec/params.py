"""The params models of Acme's plugins: what `pipespec check` validates in a spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
