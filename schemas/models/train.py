"""The `train:` and `evaluate:` sections."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, ValidationInfo, field_validator

from pipespec.schemas import plugins
from pipespec.schemas.models.common import AssetUri, Duration, Quantity, Schedule, StrictModel
from pipespec.schemas.models.data import DataUri
from pipespec.schemas.models.lifecycle import CostGate, Decision, LiveEvaluation

PluginName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class Model(StrictModel):
    """What to train: a registered model type (built-in or an installed plugin's), its columns and parameters."""

    type: PluginName = Field(description="A registered model type: built-in, or from an installed plugin package "
                                         "(`pipespec plugins` lists them).")
    label: str = Field("label", description="Target column.")
    features: list[str] = Field(default_factory=lambda: ["text"], description="Input columns.")
    params: dict[str, Any] = Field(default_factory=dict, description="The model type's parameters, checked against "
                                                                     "its params model.")

    @field_validator("type")
    @classmethod
    def _registered(cls, name: str) -> str:
        return plugins.require("model", name)

    @field_validator("params")
    @classmethod
    def _valid_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("type")  # absent when the type itself was refused
        return plugins.validate_params("model", name, params) if name else params


class GateRef(StrictModel):
    """A gate from an installed plugin: it can veto a promotion after evaluation."""

    type: PluginName = Field(description="A registered gate (`pipespec plugins`).")
    params: dict[str, Any] = Field(default_factory=dict, description="The gate's parameters.")

    @field_validator("type")
    @classmethod
    def _registered(cls, name: str) -> str:
        return plugins.require("gate", name)

    @field_validator("params")
    @classmethod
    def _valid_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("type")
        return plugins.validate_params("gate", name, params) if name else params


class LocalCompute(StrictModel):
    """Train in a process on the Airflow worker."""

    backend: Literal["local"]


class Resources(StrictModel):
    """What a training pod requests."""

    cpu: Quantity = "1"
    memory: Quantity = "2Gi"
    gpu: int = Field(0, ge=0)


class Toleration(StrictModel):
    """A Kubernetes toleration for the training pod."""

    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Volume(StrictModel):
    """A PersistentVolumeClaim mounted into the training pod."""

    name: str
    claim: str = Field(description="PersistentVolumeClaim name.")
    mount_path: str


class KubernetesCompute(StrictModel):
    """Train in a pod on Kubernetes (KubernetesPodOperator)."""

    backend: Literal["kubernetes"]
    image: str | None = Field(None, description="Training image, pinned by tag or digest, from a registry the "
                                                "platform policy allows. Required, except for a `container` model, "
                                                "whose own image runs.")
    namespace: str = Field("default", description="Allowed by the platform policy (without one: any but kube-system, "
                                                  "kube-public, kube-node-lease).")
    conn_id: str = "kubernetes_default"
    service_account: str | None = Field(None, description="Default: the namespace's `default` account; any other "
                                                          "must be allowed by the platform policy.")
    resources: Resources = Field(default_factory=Resources)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    startup_timeout: Duration = "10m"


class AnyscaleCompute(StrictModel):
    """Train as an Anyscale job."""

    backend: Literal["anyscale"]
    conn_id: str = "anyscale_conn"
    image_uri: str | None = None
    containerfile: str | None = Field(None, description="Refused: it would be read from the Airflow worker; build "
                                                        "the image in CI and set `image_uri`.")
    compute_config: str | None = Field(None, description="Name of an Anyscale compute config.")
    working_dir: str | None = Field(None, description="A remote zip or prefix (s3://, gs://, https://) the policy "
                                                      "allows; never a path on the worker.")
    requirements: list[str] = Field(default_factory=list, description="PEP 508 requirements (`name==1.2`); no pip "
                                                                      "options or URLs.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra variables; the platform's own (MLFLOW_*, "
                                                                  "AWS_*, PIP_*, PATH, ...) are reserved.")
    timeout: Duration = "4h"
    max_retries: int = Field(1, ge=0)


class RayCompute(StrictModel):
    """Train as a Ray job on a Ray cluster (Ray Jobs API); the wait runs in Airflow's triggerer."""

    backend: Literal["ray"]
    conn_id: str = Field("ray_default", description="Airflow connection: host = the cluster's dashboard URL, "
                                                    "password = its auth token.")
    cpus: float = Field(1, gt=0, le=256)
    gpus: float = Field(0, ge=0, le=16)
    env: dict[str, str] = Field(default_factory=dict, description="Extra variables; the platform's own (MLFLOW_*, "
                                                                  "AWS_*, PIP_*, PATH, ...) are reserved.")
    timeout: Duration = "4h"


Compute = Annotated[Union[LocalCompute, KubernetesCompute, AnyscaleCompute, RayCompute], Discriminator("backend")]


class InferenceKubernetesCompute(KubernetesCompute):
    """Predict each shard in a pod on Kubernetes: the pod runs pipespec's inference entry point
    (`python -m pipespec.tasklib.inference predict`), so its image is one with pipespec installed."""

    image: str = Field(description="An image with pipespec installed, pinned by tag or digest, from a registry the "  # type: ignore[assignment]
                                   "platform policy allows.")


InferenceCompute = Annotated[Union[LocalCompute, InferenceKubernetesCompute], Discriminator("backend")]


def _default_compute() -> Any:
    return LocalCompute(backend="local")


class TrainSection(StrictModel):
    """Train a challenger model on the published data."""

    schedule: Schedule | None = Field(None, description="Default: when `data.publishes` updates.")
    dataset: DataUri | None = Field(None, description="Training data; default: `data.publishes`.")
    model: Model
    compute: Compute = Field(default_factory=_default_compute)
    publishes: AssetUri | None = Field(None, description="Model Asset updated on promotion; default `model://<pipeline>`.")
    cost_gate: CostGate | None = Field(None, description="Block the run when the estimated fine-tuning cost is over "
                                                         "budget.")
    manual: bool = Field(False, description="Also compile `<pipeline>__retrain`: the same train, evaluate and rollout, "
                                            "run only when someone triggers it (beside the scheduled `__train`).")


class EvaluateSection(StrictModel):
    """Score challenger and champion on the same holdout; decide which serves."""

    holdout: DataUri | None = Field(None, description="Fixed holdout set; default: a seeded split of the training data.")
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    metric: str = Field(description="The metric that decides; must suit the model type.")
    direction: Literal["max", "min"] | None = Field(None, description="Default: the metric's natural direction.")
    floor: float | None = Field(None, description="Never deploy a model scoring worse than this.")
    gates: list[GateRef] = Field(default_factory=list, description="Plugin gates, each able to veto the promotion.")
    live: LiveEvaluation | None = Field(None, description="Score the served models over an OpenAI-compatible "
                                                          "endpoint instead of on a worker (LLMs).")
    decision: Decision | None = Field(None, description="Decide on several metrics instead of `metric` alone.")
