"""Building blocks shared by every spec section: strict models, names,
durations, cron expressions, Asset URIs and schedules."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from pipespec.schemas import asset_uri
from pipespec.schemas.cron import validate_cron


class StrictModel(BaseModel):
    """Every spec model rejects unknown keys (reported with a "did you mean")."""

    # strict: `only_new: "yes"` or `min_records: "100"` are mistakes to report, not values to guess.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$",
                                  description="lower_snake_case name, used in DAG and task ids")]

# ASCII digits, as the JSON Schema's `\d` means them (ECMA-262); Python's and pydantic's `\d` take any
# Unicode digit, which int() reads but other tools do not.
_DURATION = re.compile(r"^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
# Every duration becomes a `timedelta` (retry delays, timeouts); an unbounded one overflows it while the
# DAG is built. A year is longer than any wait or timeout a pipeline means.
MAX_DURATION_DAYS = 365


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `1h30m`; ValueError for anything else."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError("durations look like `90s`, `5m`, `2h`, `1d` or `1h30m`")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _bounded_duration(text: str) -> str:
    if parse_duration(text) > MAX_DURATION_DAYS * 86400:
        raise ValueError(f"`{text}` is longer than {MAX_DURATION_DAYS} days, the longest duration pipespec accepts")
    return text


Duration = Annotated[
    str,
    Field(pattern=r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
          description=f"A duration such as `90s`, `5m`, `2h`, `1d`; at most `{MAX_DURATION_DAYS}d`."),
    AfterValidator(_bounded_duration),
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
    return asset_uri.check(uri)  # what Airflow and its providers refuse while the DAG file is parsed


AssetUri = Annotated[str, Field(description=f"Asset URI, e.g. `s3://bucket/curated/`; at most "
                                            f"{asset_uri.MAX_LENGTH} characters."),
                     AfterValidator(_check_asset_uri)]


class AllOf(StrictModel):
    """`{all: [...]}`: run when every listed Asset has updated."""

    all: list["AssetExpr"] = Field(min_length=1, max_length=64, description="Run when every one of these Assets has updated.")


class AnyOf(StrictModel):
    """`{any: [...]}`: run when any listed Asset has updated."""

    any: list["AssetExpr"] = Field(min_length=1, max_length=64, description="Run when any one of these Assets has updated.")


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


def _at_least_a_minute(text: str) -> str:
    if parse_duration(text) < 60:
        raise ValueError("a schedule runs at most once a minute, like a cron: use `1m` or more")
    return text


class Trigger(StrictModel):
    """When a DAG runs, in one of three forms: `cron` alone (on a cron), `assets` alone (when Assets update,
    AND/OR), or `assets` with `or_cron` (on the Assets or the cron, whichever comes first)."""

    cron: Cron | None = Field(None, description="Run on this cron schedule (and nothing else).")
    assets: AssetExpr | Annotated[list[AssetExpr], Field(max_length=64)] | None = Field(
        None, description="Run when these Assets update; a list means all of them.")
    or_cron: Cron | None = Field(None, description="With `assets`: also run on this cron (Assets-or-time).")
    every: Annotated[Duration, AfterValidator(_at_least_a_minute)] | None = Field(
        None, description="Run every this long (`6h`, `1d12h`; at least `1m`, like a cron): a timedelta schedule, "
                          "each run covering the interval since the previous one.")


MANUAL = "manual"
Manual = Literal["manual"]


def _cron_shorthand(value: Any) -> Any:
    if isinstance(value, str) and value != MANUAL:
        return {"every": value} if _DURATION.match(value) else {"cron": value}
    return value


# `manual`: the DAG runs only when someone triggers it. Any other string is a cron.
Schedule = Annotated[
    Union[Annotated[Manual, Tag(MANUAL)], Annotated[Trigger, Tag("trigger")]],
    Discriminator(lambda v: MANUAL if v == MANUAL else "trigger"),
    BeforeValidator(_cron_shorthand, json_schema_input_type=Union[Manual, Cron, Trigger]),
]


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


# A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity), unsigned: 500m, 4, 1.5, 16Gi, 1e3.
_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": Decimal("1e-9"),
             "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$")

def _check_quantity(text: str) -> str:
    parse_quantity(text)
    return text


# Checked by a validator, not a JSON Schema pattern: the reference shows "string" and the examples below.
Quantity = Annotated[str, Field(description="A Kubernetes quantity: `500m` or `4` CPUs, `512Mi` or `16Gi` of memory."),
                     AfterValidator(_check_quantity)]


def parse_quantity(text: str) -> Decimal:
    """The amount a Kubernetes quantity stands for (CPUs or bytes), to compare against policy limits."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"`{text}` is not a Kubernetes quantity (examples: 500m or 4 for cpu, 512Mi or 16Gi "
                         f"for memory)")
    suffix = match["suffix"] or ""
    number = text[: len(text) - len(suffix)]
    if suffix[:1] in ("e", "E") and suffix not in _SUFFIXES:
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    return Decimal(number) * Decimal(_SUFFIXES.get(suffix, 1))
