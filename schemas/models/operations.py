"""Retries, alerts and inference: how a pipeline behaves in production."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipespec.schemas import plugins

from pipespec.schemas.models.common import Duration, Schedule, StrictModel
from pipespec.schemas.models.data import DataUri
from pipespec.schemas.models.train import InferenceCompute, LocalCompute

Event = Literal["failure", "retry", "gate_blocked", "promoted", "rejected", "rolled_back"]
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class RetryPolicy(StrictModel):
    """Retry settings for one stage; unset fields keep the pipeline's defaults."""

    count: int | None = Field(None, ge=0, le=50, description="Retries after the first try.")
    delay: Duration | None = Field(None, description="Wait before the first retry.")
    backoff: Literal["constant", "exponential"] | None = None
    max_delay: Duration | None = Field(None, description="Cap for exponential backoff.")


class RetryOverrides(StrictModel):
    """Retry settings per stage, over the pipeline's defaults."""

    data: RetryPolicy | None = None
    train: RetryPolicy | None = None
    evaluate: RetryPolicy | None = None
    rollout: RetryPolicy | None = None
    inference: RetryPolicy | None = None


class Retries(StrictModel):
    """How failed tasks are retried."""

    count: int = Field(2, ge=0, le=50)
    delay: Duration = "5m"
    backoff: Literal["constant", "exponential"] = "constant"
    max_delay: Duration | None = None
    overrides: RetryOverrides = Field(default_factory=RetryOverrides, description="Per stage, over the defaults.")


class SlackChannel(StrictModel):
    """Post to a Slack channel through an Airflow Slack connection."""

    channel: Annotated[str, Field(pattern=r"^[#@]?[\w.\-]+$")]
    conn_id: str = "slack_default"


class EmailChannel(StrictModel):
    """Send an email through an Airflow SMTP connection."""

    to: list[Annotated[str, Field(pattern=EMAIL)]] = Field(min_length=1)
    conn_id: str = "smtp_default"


class WebhookChannel(StrictModel):
    """POST a JSON message through an Airflow HTTP connection."""

    conn_id: str = Field(description="HTTP connection whose host is the webhook URL.")
    endpoint: str = ""


def _plugin_channels(schema: dict[str, Any]) -> None:
    plugins.inline_plugin_schema("alert_channel", under_name=True)(schema)
    names = plugins.plugin_names("alert_channel", builtin=False)
    for key in ("propertyNames", "minProperties", "maxProperties"):  # those are for one-key mappings
        schema.pop(key, None)
    schema.pop("additionalProperties", None)
    schema["unevaluatedProperties"] = False
    schema["properties"].update({name: {"description": f"The `{name}` alert channel (plugin)."} for name in names})


BUILTIN_CHANNELS: dict[str, type[StrictModel]] = {"slack": SlackChannel, "email": EmailChannel,
                                                   "webhook": WebhookChannel}


class Alert(StrictModel):
    """Who hears about which events: one channel per alert, built-in (`slack`, `email`, `webhook`) or an
    installed plugin package's, written as `<channel>: <its params>`."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_plugin_channels)

    on: list[Event] = Field(min_length=1, description="Events that send this alert.")
    slack: SlackChannel | None = None
    email: Annotated[EmailChannel | None, BeforeValidator(
        lambda v: {"to": [v] if isinstance(v, str) else v} if isinstance(v, (list, str)) else v,
        json_schema_input_type=Union[str, list[str], EmailChannel, None])] = None
    webhook: WebhookChannel | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> "Alert":
        for name, params in (self.model_extra or {}).items():  # a plugin's channel, by its registered name
            try:
                plugins.require("alert_channel", name)
            except PydanticCustomError as error:
                raise ValidationError.from_exception_data("Alert", [InitErrorDetails(
                    type=error, loc=(name,), input=params)]) from None
            plugins.validate_inline("alert_channel", name, params if params is not None else {}, (name,))
        channels = [c for c in BUILTIN_CHANNELS if getattr(self, c) is not None] + list(self.model_extra or {})
        if len(channels) != 1:
            raise ValueError("each alert names exactly one channel: `slack`, `email`, `webhook` or an installed "
                             "plugin's alert channel")
        return self

    def channel(self) -> tuple[str, dict[str, Any]]:
        """(the channel's registered name, its settings): what the compiler puts in the IR."""
        for name in BUILTIN_CHANNELS:
            settings = getattr(self, name)
            if settings is not None:
                return name, settings.model_dump()
        (name, params), = (self.model_extra or {}).items()
        return name, dict(params or {})


class InferenceSection(StrictModel):
    """Batch predictions with the serving model, in mapped shards."""

    schedule: Schedule | None = Field(None, description="Default: when the model Asset updates.")
    input: DataUri = Field(description="Where new records to score arrive.")
    output: DataUri = Field(description="Where predictions are published (the predictions Asset).")
    format: Literal["jsonl", "csv", "parquet"] = "parquet"
    shard_size: int | None = Field(None, gt=0, description="Rows per mapped prediction task; unset: one shard "
                                                           "per worker slot (each task start-up costs seconds).")
    compute: InferenceCompute = Field(default_factory=lambda: LocalCompute(backend="local"),
                                      description="Where each shard is predicted: on the worker, or in a pod "
                                                  "(seed 003's inference pods).")

