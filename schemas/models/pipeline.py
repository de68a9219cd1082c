"""The root of a spec: one pipeline, its sections, and what it depends on."""

from __future__ import annotations

from pydantic import Field

from .common import AssetUri, Identifier, StrictModel
from .data import DataSection
from .operations import Alert, InferenceSection, Retries
from .rollout import RolloutSection
from .train import EvaluateSection, TrainSection


class PipelineSpec(StrictModel):
    """A production ML pipeline: data → train → evaluate → rollout → inference."""

    pipeline: Identifier = Field(description="Unique name; DAG ids are `<pipeline>__data`, `__train`, `__inference`.")
    description: str = Field("", max_length=2000)
    owner: str = Field("pipespec", description="Team that owns the pipeline (shown in the Airflow UI).")
    tags: list[str] = Field(default_factory=list)
    external_assets: list[AssetUri] = Field(
        default_factory=list, description="Assets this pipeline consumes that no pipeline in the repo produces.")
    data: DataSection | None = None
    train: TrainSection | None = None
    evaluate: EvaluateSection | None = None
    rollout: RolloutSection | None = None
    retries: Retries = Field(default_factory=Retries)
    alerts: list[Alert] = Field(default_factory=list)
    inference: InferenceSection | None = None
