"""The root of a spec: one pipeline, its sections, and what it depends on."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from pipespec.schemas.models.common import AssetUri, Identifier, StrictModel
from pipespec.schemas.models.data import DataSection
from pipespec.schemas.models.lifecycle import DagControls
from pipespec.schemas.models.operations import Alert, InferenceSection, Retries
from pipespec.schemas.models.rollout import RolloutSection
from pipespec.schemas.models.train import EvaluateSection, TrainSection


TAG_MAX_LENGTH = 100  # airflow.sdk.definitions.dag.TAG_MAX_LEN: a longer tag makes `DAG()` raise


def _check_tag(tag: str) -> str:
    if not 1 <= len(tag) <= TAG_MAX_LENGTH:
        raise ValueError(f"a tag has 1 to {TAG_MAX_LENGTH} characters (Airflow's limit); this has {len(tag)}")
    return tag


DagTag = Annotated[str, Field(description=f"A DAG tag of 1 to {TAG_MAX_LENGTH} characters."), AfterValidator(_check_tag)]


class PipelineSpec(StrictModel):
    """A production ML pipeline: data → train → evaluate → rollout → inference."""

    pipeline: Identifier = Field(description="Unique name; DAG ids are `<pipeline>__data`, `__train`, `__inference`.")
    description: str = Field("", max_length=2000)
    # Airflow stores owners in a 2,000-character column; a longer one fails while the DAG is saved.
    owner: str = Field("pipespec", min_length=1, max_length=2000,
                       description="Team that owns the pipeline (shown in the Airflow UI).")
    tags: list[DagTag] = Field(default_factory=list, max_length=32,
                               description=f"DAG tags, each 1 to {TAG_MAX_LENGTH} characters.")
    external_assets: list[AssetUri] = Field(
        default_factory=list, max_length=256, description="Assets this pipeline consumes that no pipeline in the repo produces.")
    data: DataSection | None = None
    train: TrainSection | None = None
    evaluate: EvaluateSection | None = None
    rollout: RolloutSection | None = None
    retries: Retries = Field(default_factory=Retries)
    alerts: list[Alert] = Field(default_factory=list, max_length=32)
    inference: InferenceSection | None = None
    dag: DagControls = Field(default_factory=DagControls, description="Airflow's DAG-level controls, for every DAG.")
