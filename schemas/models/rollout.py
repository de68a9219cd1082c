"""The `rollout:` section: champion/challenger policy, stages and target."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field
from pydantic_core import PydanticCustomError

from pipespec.schemas.models.common import Duration, StrictModel, single_key_union


class ShadowArgs(StrictModel):
    """Settings of a `shadow` stage."""

    duration: Duration | None = Field(None, description="How long the challenger runs without traffic.")


class Guard(StrictModel):
    """When a canary rolls back."""

    max_drop: float = Field(0.02, ge=0, description="Roll back when the live metric drops more than this.")


class CanaryArgs(StrictModel):
    """Settings of a `canary` stage."""

    percent: int = Field(gt=0, lt=100, description="Share of traffic sent to the challenger.")
    guard: Guard = Field(default_factory=Guard)
    duration: Duration | None = None


class ApprovalArgs(StrictModel):
    """Settings of an `approval` stage."""

    timeout: Duration = Field("1d", description="Rejected when nobody approves in time.")
    subject: str | None = None


class Shadow(StrictModel):
    """Deploy the challenger with no traffic."""

    shadow: ShadowArgs | None = None


class Canary(StrictModel):
    """Send a share of traffic to the challenger, guarded by the live metric."""

    canary: Annotated[CanaryArgs, BeforeValidator(lambda v: {"percent": v} if isinstance(v, int) else v,
                                                  json_schema_input_type=Union[int, CanaryArgs])]


class Approval(StrictModel):
    """Wait for a person to approve or reject the challenger."""

    approval: ApprovalArgs | None = None


class Full(StrictModel):
    """Serve the challenger: it becomes the champion."""

    full: None = None


Stage = single_key_union(("shadow", Shadow), ("canary", Canary), ("approval", Approval), ("full", Full),
                         shorthand=True, what="rollout stage")


# Aliases pipespec moves itself (pipespec.tasklib.model.registry, pipespec.tasklib.rollout.stages): serving one of them
# would serve unevaluated challengers, or let the shadow/canary stages move the serving alias.
RESERVED_ALIASES = ("challenger", "shadow", "canary")


def _serving_alias(alias: str) -> str:
    if alias in RESERVED_ALIASES or alias.startswith("previous_"):
        raise PydanticCustomError("reserved_alias", f"`{alias}` is an alias pipespec moves itself during a rollout")
    return alias


class RegistryAliasTarget(StrictModel):
    """Move a model registry alias; serving and inference load the model it points at."""

    type: Literal["registry_alias"]
    alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$"), AfterValidator(_serving_alias)] = Field(
        "champion", description="Registry alias that serving and inference load; not `challenger`, `shadow`, "
                                "`canary` or `previous_*`, which pipespec moves itself.")


class AnyscaleServiceTarget(StrictModel):
    """Deploy to an Anyscale Service."""

    type: Literal["anyscale_service"]
    name: str = Field(description="Anyscale Service name.")
    conn_id: str = "anyscale_conn"
    compute_config: str | None = None
    image_uri: str | None = None
    applications: list[dict[str, Any]] = Field(default_factory=list)


class KubernetesTarget(StrictModel):
    """Serve from a Kubernetes Deployment; canary and shadow stages use clones of it."""

    type: Literal["kubernetes"]
    deployment: str
    container: str | None = Field(None, description="Container to update; default: the deployment's name.")
    namespace: str = "default"
    conn_id: str = "kubernetes_default"
    image: str | None = None


Target = Annotated[Union[RegistryAliasTarget, AnyscaleServiceTarget, KubernetesTarget], Discriminator("type")]


def _target_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class RolloutSection(StrictModel):
    """How a challenger that beat the champion reaches production."""

    policy: Literal["champion_challenger"] = "champion_challenger"
    min_improvement: float = Field(0.0, ge=0, description="The challenger must beat the champion by at least this.")
    stages: list[Stage] = Field(default_factory=lambda: [Full()], max_length=16, description="In order; `full` comes last.")
    target: Annotated[Target, BeforeValidator(_target_shorthand, json_schema_input_type=Union[
        Literal["registry_alias"], Target])] = Field(
        default_factory=lambda: RegistryAliasTarget(type="registry_alias"))
