"""Building blocks shared by every spec section: strict models, names,
durations, cron expressions, Asset URIs and schedules."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from ..cron import validate_cron


class StrictModel(BaseModel):
    """Every spec model rejects unknown keys (reported with a "did you mean")."""

    # strict: `only_new: "yes"` or `min_records: "100"` are mistakes to report, not values to guess.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$",
                                  description="lower_snake_case name, used in DAG and task ids")]

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError("durations look like `90s`, `5m`, `2h`, `1d` or `1h30m`")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


Duration = Annotated[
    str,
    Field(pattern=r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", description="A duration such as `90s`, `5m`, `2h`, `1d`."),
    AfterValidator(lambda v: (parse_duration(v), v)[1]),
]

Cron = Annotated[
    str,
    Field(description="A cron expression (`0 3 * * *`) or preset (`@daily`, `@hourly`, `@weekly`, ...)."),
    AfterValidator(validate_cron),
]

_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s]+$")


def _check_asset_uri(uri: str) -> str:
    if not _URI.match(uri):
        raise ValueError("an Asset is a URI such as `s3://bucket/prefix/` or `file:///data/curated/`")
    if uri.startswith("airflow://"):
        raise ValueError("the `airflow://` scheme is reserved by Airflow")
    return uri


AssetUri = Annotated[str, Field(description="Asset URI, e.g. `s3://bucket/curated/`."), AfterValidator(_check_asset_uri)]


class AllOf(StrictModel):
    all: list["AssetExpr"] = Field(min_length=1, description="Run when every one of these Assets has updated.")


class AnyOf(StrictModel):
    any: list["AssetExpr"] = Field(min_length=1, description="Run when any one of these Assets has updated.")


def _asset_expr_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "uri"
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    return None


AssetExpr = Annotated[
    Union[Annotated[AssetUri, Tag("uri")], Annotated[AllOf, Tag("all")], Annotated[AnyOf, Tag("any")]],
    Discriminator(_asset_expr_kind, custom_error_type="asset_expr",
                  custom_error_message="expected an Asset URI, `{all: [...]}` or `{any: [...]}`"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class Trigger(StrictModel):
    """When a DAG runs: on a cron, on Assets (AND/OR), or on Assets or a cron, whichever comes first."""

    cron: Cron | None = Field(None, description="Run on this cron schedule.")
    assets: AssetExpr | list[AssetExpr] | None = Field(
        None, description="Run when these Assets update; a list means all of them.")
    or_cron: Cron | None = Field(None, description="With `assets`: also run on this cron (Assets-or-time).")


def _cron_shorthand(value: Any) -> Any:
    return {"cron": value} if isinstance(value, str) else value


Schedule = Annotated[Trigger, BeforeValidator(_cron_shorthand, json_schema_input_type=Union[Cron, Trigger])]


def single_key_union(*members: tuple[str, type[BaseModel]], shorthand: bool = False, what: str) -> Any:
    """A union of one-key mappings (`{dedupe: {...}}`), chosen by that key.

    With `shorthand`, a bare string `name` means `{name: {}}`.
    """

    def kind(value: Any) -> str | None:
        if isinstance(value, dict) and len(value) == 1:
            return next(iter(value))
        if shorthand and isinstance(value, str):
            return value
        return None

    def expand(value: Any) -> Any:
        return {value: None} if shorthand and isinstance(value, str) else value

    tags = ", ".join(f"`{key}`" for key, _ in members)
    union = Union[tuple(Annotated[model, Tag(key)] for key, model in members)]  # type: ignore[misc]
    # What editors see: the one-key mappings, plus the bare names when `shorthand` allows them.
    schema_input = Union[Literal[tuple(key for key, _ in members)], union] if shorthand else union  # type: ignore[misc]
    return Annotated[
        union,
        Discriminator(kind, custom_error_type="unknown_variant",
                      custom_error_message=f"expected one {what}: {tags}"),
        BeforeValidator(expand, json_schema_input_type=schema_input),
    ]
