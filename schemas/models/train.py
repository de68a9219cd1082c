"""The `train:` and `evaluate:` sections."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field

from ..catalog import MODEL_TYPES
from .common import AssetUri, Duration, Schedule, StrictModel

ModelTypeName = Literal[tuple(MODEL_TYPES)]  # type: ignore[valid-type]
ParamValue = Union[str, int, float, bool, list[Union[str, int, float, bool]], dict[str, Union[str, int, float, bool]]]


class Model(StrictModel):
    type: ModelTypeName = Field(description="A model type from the task library.")
    label: str = Field("label", description="Target column.")
    features: list[str] = Field(default_factory=lambda: ["text"], description="Input columns.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Model parameters (per model type).")


class LocalCompute(StrictModel):
    backend: Literal["local"]


class Resources(StrictModel):
    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = Field(0, ge=0)


class Toleration(StrictModel):
    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Volume(StrictModel):
    name: str
    claim: str = Field(description="PersistentVolumeClaim name.")
    mount_path: str


class KubernetesCompute(StrictModel):
    backend: Literal["kubernetes"]
    image: str = Field(description="Training image, pinned by tag or digest.")
    namespace: str = "default"
    conn_id: str = "kubernetes_default"
    service_account: str | None = None
    resources: Resources = Field(default_factory=Resources)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    startup_timeout: Duration = "10m"


class AnyscaleCompute(StrictModel):
    backend: Literal["anyscale"]
    conn_id: str = "anyscale_conn"
    image_uri: str | None = None
    containerfile: str | None = None
    compute_config: str | None = Field(None, description="Name of an Anyscale compute config.")
    working_dir: str | None = None
    requirements: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = "4h"
    max_retries: int = Field(1, ge=0)


Compute = Annotated[Union[LocalCompute, KubernetesCompute, AnyscaleCompute], Discriminator("backend")]


def _default_compute() -> Any:
    return LocalCompute(backend="local")


class TrainSection(StrictModel):
    schedule: Schedule | None = Field(None, description="Default: when `data.publishes` updates.")
    dataset: AssetUri | None = Field(None, description="Training data; default: `data.publishes`.")
    model: Model
    compute: Compute = Field(default_factory=_default_compute)
    publishes: AssetUri | None = Field(None, description="Model Asset updated on promotion; default `model://<pipeline>`.")


class EvaluateSection(StrictModel):
    holdout: AssetUri | None = Field(None, description="Fixed holdout set; default: a seeded split of the training data.")
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    metric: str = Field(description="The metric that decides; must suit the model type.")
    direction: Literal["max", "min"] | None = Field(None, description="Default: the metric's natural direction.")
    floor: float | None = Field(None, description="Never deploy a model scoring worse than this.")
