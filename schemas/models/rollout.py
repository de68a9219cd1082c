"""The `rollout:` section: champion/challenger policy, stages and target."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from pipespec.schemas import plugins
from pipespec.schemas.models.common import Duration, StrictModel, single_key_union
from pipespec.schemas.plugins import PluginName, inline_plugin_schema


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


# --- the built-in serving targets' params: declared as plugins (pipespec.schemas.plugins_builtin) ------

class RegistryAliasParams(StrictModel):
    """Settings of a `registry_alias` target."""

    alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$"), AfterValidator(_serving_alias)] = Field(
        "champion", description="Registry alias that serving and inference load; not `challenger`, `shadow`, "
                                "`canary` or `previous_*`, which pipespec moves itself.")


class AnyscaleServiceParams(StrictModel):
    """Settings of an `anyscale_service` target."""

    name: str = Field(description="Anyscale Service name.")
    conn_id: str = "anyscale_conn"
    compute_config: str | None = None
    image_uri: str | None = None
    applications: list[dict[str, Any]] = Field(default_factory=list)


class KubernetesParams(StrictModel):
    """Settings of a `kubernetes` target."""

    deployment: str
    container: str | None = Field(None, description="Container to update; default: the deployment's name.")
    namespace: str = "default"
    conn_id: str = "kubernetes_default"
    image: str | None = None


class _TargetBase(StrictModel):
    type: str  # each target type narrows it; first, as specs write it


class RegistryAliasTarget(RegistryAliasParams, _TargetBase):
    """Move a model registry alias; serving and inference load the model it points at."""

    type: Literal["registry_alias"]


class AnyscaleServiceTarget(AnyscaleServiceParams, _TargetBase):
    """Deploy to an Anyscale Service."""

    type: Literal["anyscale_service"]


class KubernetesTarget(KubernetesParams, _TargetBase):
    """Serve from a Kubernetes Deployment; canary and shadow stages use clones of it."""

    type: Literal["kubernetes"]


class PluginTarget(_TargetBase):
    """A serving target from an installed plugin package; its settings sit beside `type` and are
    checked against the plugin's params model. Each stage calls it with the version to serve."""

    model_config = ConfigDict(extra="allow", json_schema_extra=inline_plugin_schema("serving_target", under_name=False))

    type: PluginName = Field(description="A serving target from an installed plugin package (`pipespec plugins`).")

    @field_validator("type")
    @classmethod
    def _registered(cls, name: str) -> str:
        return plugins.require("serving_target", name)

    @model_validator(mode="after")
    def _valid_params(self) -> "PluginTarget":
        plugins.validate_inline("serving_target", self.type, self.model_extra or {})
        return self


_BUILTIN_TARGETS = {"registry_alias": RegistryAliasTarget, "anyscale_service": AnyscaleServiceTarget,
                    "kubernetes": KubernetesTarget}
BUILTIN_TARGET_PARAMS: dict[str, type[BaseModel]] = {
    "registry_alias": RegistryAliasParams, "anyscale_service": AnyscaleServiceParams, "kubernetes": KubernetesParams}


Target = Annotated[Union[tuple(Annotated[model, Tag(tag)] for tag, model in  # type: ignore[misc]
                               [*_BUILTIN_TARGETS.items(), ("plugin", PluginTarget)])], Discriminator(plugins.type_tag(_BUILTIN_TARGETS))]


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
