"""The `data:` section: sources, mapped transforms, join, gates, the published Asset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, RootModel, Tag,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from pipespec.schemas import plugins
from pipespec.schemas.plugins import PluginName, inline_plugin_schema
from pipespec.schemas.data_access import DATA_URI_HINT, LOCAL_PATH_HINT, data_uri_problem, local_path_problem, query_problem
from pipespec.schemas.models.common import AssetUri, Duration, Identifier, Schedule, StrictModel
from pipespec.schemas.models.lifecycle import RecordCounts, WaitForData


def _confined(problem_of: Callable[[str], str | None]) -> AfterValidator:
    """A validator for the data-access rules (pipespec.schemas.data_access). A custom error type, not a
    ValueError, so the checker gives the field's description as the hint."""
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise PydanticCustomError("data_access", problem)
        return value
    return AfterValidator(check)


# Data that steps read or write (not Assets that only trigger a schedule): `s3://`, no traversal.
DataUri = Annotated[AssetUri, _confined(data_uri_problem), Field(description=DATA_URI_HINT)]

# `images`: image files or .tgz/.zip archives of them, labelled by folder (path, label, image pixels);
# `documents`: .txt/.md files or archives of them (path, label, text).
Format = Literal["jsonl", "csv", "parquet", "images", "documents"]


Query = Annotated[str, _confined(query_problem), Field(
    description="SQL; may use `{{ data_interval_start }}` and `{{ data_interval_end }}`, replaced as text (a cron "
                "schedule's run covers the period since the previous tick); no other template syntax.")]


class _SourceBase(StrictModel):
    name: Identifier = Field(description="Source name; names the mapped extract task instance.")
    timeout: Duration | None = Field(None, description="Fail (and retry) the extract when it runs longer.")
    on_bad_rows: Literal["fail", "skip"] = Field(
        "fail", description="`fail` stops at a malformed row (reported with file and line); `skip` drops and counts it.")
    type: str  # each source type narrows it


# Every source has these keys; the others are its type's params (the source plugin's params model).
SOURCE_KEYS = ("name", "type", "timeout", "on_bad_rows")


# --- the built-in source types' params: declared as plugins (pipespec.schemas.plugins_builtin) --------

class _FolderParams(StrictModel):
    """How a file source's folder or prefix is read."""

    per_folder: bool = Field(False, description=(
        "Extract each folder directly under the path or prefix as its own mapped instance "
        "(`<source>__<folder>`), found when the run starts, so folders added later are picked up; "
        "files directly in it are one more instance."))
    recursive: bool = Field(True, description="Also read files in folders below the path or prefix.")

    @model_validator(mode="after")
    def _per_folder_reads_folders_whole(self) -> "_FolderParams":
        if self.per_folder and not self.recursive:
            raise ValueError("`per_folder` reads each folder whole: drop `recursive: false`")
        return self


class _S3Object(StrictModel):
    """Where an `s3` source's objects are."""

    uri: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?$",
                              description="`s3://bucket/prefix/`: one object or every object under a prefix."),
                   _confined(data_uri_problem)]
    format: Format
    conn_id: str = Field("aws_default", description="Airflow connection with the credentials.")
    only_new: bool = Field(False, description="Read only objects newer than the last successful run.")


# The folder settings come after the location's in the reference and the JSON Schema (pydantic
# orders fields from the last base class to the first).
class S3Params(_FolderParams, _S3Object):
    """Settings of an `s3` source."""


class _LocalPath(StrictModel):
    """Where a `local` source's files are."""

    path: Annotated[str, _confined(local_path_problem)] = Field(
        description=f"A file or directory: {LOCAL_PATH_HINT}.")
    format: Format
    only_new: bool = Field(False, description="Read only files newer than the last successful run.")


class LocalParams(_FolderParams, _LocalPath):
    """Settings of a `local` source."""


class SnowflakeParams(StrictModel):
    """Settings of a `snowflake` source."""

    conn_id: str = Field("snowflake_default")
    query: Query


class SqlParams(StrictModel):
    """Settings of a `sql` source."""

    conn_id: str = Field(description="Airflow connection of a common-sql database (SQLite, PostgreSQL, ...).")
    query: Query


class S3Source(S3Params, _SourceBase):
    """Objects under an S3 prefix, read with an Airflow AWS connection."""

    type: Literal["s3"]


class LocalSource(LocalParams, _SourceBase):
    """A file or directory, relative to the spec's folder."""

    type: Literal["local"]


class SnowflakeSource(SnowflakeParams, _SourceBase):
    """The rows of a Snowflake query."""

    type: Literal["snowflake"]


class SqlSource(SqlParams, _SourceBase):
    """The rows of a query on a common-sql database (SQLite, PostgreSQL, ...)."""

    type: Literal["sql"]


class PluginSource(_SourceBase):
    """A source type from an installed plugin package; its settings sit beside `name` and `type`
    and are checked against the plugin's params model."""

    model_config = ConfigDict(extra="allow", json_schema_extra=inline_plugin_schema("source", under_name=False))

    type: PluginName = Field(description="A source type from an installed plugin package (`pipespec plugins`).")

    @field_validator("type")
    @classmethod
    def _registered(cls, name: str) -> str:
        return plugins.require("source", name)

    @model_validator(mode="after")
    def _valid_params(self) -> "PluginSource":
        plugins.validate_inline("source", self.type, self.model_extra or {})
        return self


_BUILTIN_SOURCES = {"s3": S3Source, "local": LocalSource, "snowflake": SnowflakeSource, "sql": SqlSource}
BUILTIN_SOURCE_PARAMS: dict[str, type[BaseModel]] = {
    "s3": S3Params, "local": LocalParams, "snowflake": SnowflakeParams, "sql": SqlParams}


Source = Annotated[Union[tuple(Annotated[model, Tag(tag)] for tag, model in  # type: ignore[misc]
                               [*_BUILTIN_SOURCES.items(), ("plugin", PluginSource)])], Discriminator(plugins.type_tag(_BUILTIN_SOURCES))]

Columns = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v,
                                               json_schema_input_type=Union[str, list[str]]), Field(min_length=1)]


class DedupeArgs(StrictModel):
    """Settings of `dedupe`."""

    key: Columns = Field(description="Column(s) that identify a record; the first occurrence is kept.")


class NormalizeArgs(StrictModel):
    """Settings of `normalize_text`: which columns, and what to normalize."""

    columns: Columns
    lowercase: bool = True
    strip: bool = True
    collapse_whitespace: bool = True


class SampleArgs(StrictModel):
    """Settings of `sample`: a seeded random fraction of the rows."""

    fraction: float = Field(gt=0, le=1)
    seed: int = 0


class Dedupe(StrictModel):
    """Keep the first row of each key."""

    dedupe: DedupeArgs


class DropEmpty(StrictModel):
    """Drop rows with a null or blank value in any of the columns."""

    drop_empty: Columns = Field(description="Drop rows where any of these columns is null or blank.")


class Select(StrictModel):
    """Keep only these columns, in this order."""

    select: Columns


class Rename(StrictModel):
    """Rename columns."""

    rename: dict[str, str] = Field(min_length=1, description="old name: new name")


class Filter(StrictModel):
    """Keep the rows for which the expression is true."""

    filter: str = Field(description="A safe expression such as `len(text) > 3 and label != 'spam'` (no Python eval).")


class NormalizeText(StrictModel):
    """Lowercase, strip and collapse whitespace in text columns."""

    normalize_text: Annotated[NormalizeArgs, BeforeValidator(
        lambda v: {"columns": v} if isinstance(v, (str, list)) else v,
        json_schema_input_type=Union[str, list[str], NormalizeArgs])]


class RedactPii(StrictModel):
    """Replace personal data (emails, phone and card numbers) in text columns."""

    redact_pii: Columns = Field(description="Replace emails, phone and card numbers in these columns.")


class Sample(StrictModel):
    """Keep a seeded random fraction of the rows."""

    sample: SampleArgs


class PluginTransform(RootModel[dict[str, Any]]):
    """A transform from an installed plugin package: `{name: its params}`, checked against its params model."""

    model_config = ConfigDict(frozen=True, json_schema_extra=inline_plugin_schema("transform", under_name=True))

    @model_validator(mode="after")
    def _registered(self) -> "PluginTransform":
        (name, params), = self.root.items()
        plugins.require("transform", name)
        plugins.validate_inline("transform", name, params, (name,))
        return self

    @property
    def name(self) -> str:
        """The transform's registered name."""
        return next(iter(self.root))


def _columns_params(what: str) -> type[BaseModel]:
    return type(what, (RootModel[Columns],), {"__doc__": f"Settings of `{what}`: column(s)."})


class RenameParams(RootModel[Annotated[dict[str, str], Field(min_length=1)]]):
    """Settings of `rename`: old name: new name."""


class FilterParams(RootModel[str]):
    """Settings of `filter`: the expression."""


class NormalizeTextParams(RootModel[Annotated[NormalizeArgs, BeforeValidator(
        lambda v: {"columns": v} if isinstance(v, (str, list)) else v)]]):
    """Settings of `normalize_text`, also as just the column(s)."""


# The built-in transforms: spec classes (typed JSON Schema and messages) and, declared as plugins
# (pipespec.schemas.plugins_builtin), the params model of the value under each name.
BUILTIN_TRANSFORMS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "dedupe": (Dedupe, DedupeArgs), "drop_empty": (DropEmpty, _columns_params("DropEmptyParams")),
    "select": (Select, _columns_params("SelectParams")), "rename": (Rename, RenameParams),
    "filter": (Filter, FilterParams), "normalize_text": (NormalizeText, NormalizeTextParams),
    "redact_pii": (RedactPii, _columns_params("RedactPiiParams")), "sample": (Sample, SampleArgs),
}


def transform_name(transform: BaseModel) -> str:
    """The registered name of a spec transform (its one key), built-in or a plugin's."""
    return next(iter(transform.model_dump()))


def _transform_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if not (isinstance(value, dict) and len(value) == 1):
        return None
    name = next(iter(value))
    return name if name in BUILTIN_TRANSFORMS else "plugin"


Transform = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for name, (model, _) in  # type: ignore[misc]
                [*BUILTIN_TRANSFORMS.items(), ("plugin", (PluginTransform, None))])],
    Discriminator(_transform_tag, custom_error_type="unknown_variant", custom_error_message=(
        "expected one transform: " + ", ".join(f"`{name}`" for name in BUILTIN_TRANSFORMS)
        + " or an installed plugin's"))]


class Join(StrictModel):
    """How the per-source tables become one dataset."""

    type: Literal["union", "inner", "left"] = Field("union", description="`union` stacks rows; `inner`/`left` join on `on`.")
    on: list[str] = Field(default_factory=list, description="Key columns for `inner` and `left` joins.")


def _join_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class Threshold(StrictModel):
    """How much data the gate needs before it publishes."""

    min_records: int = Field(0, ge=0, description="Block when the joined data has fewer rows.")
    min_new_records: int = Field(0, ge=0, description="Block when fewer rows are new since the last published data.")
    retrain_on: Literal["new_records_or_drift", "drift"] = Field(
        "new_records_or_drift", description="`drift`: publish (and so retrain) only when `data.drift` detects drift, "
                                            "whatever the new-record count (seed 004).")


class Range(StrictModel):
    """Bounds a numeric column's values must lie within."""

    min: float | None = None
    max: float | None = None


class Quality(StrictModel):
    """Checks the joined data must pass before it is published."""

    required_columns: list[str] = Field(default_factory=list)
    max_null_rate: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    ranges: dict[str, Range] = Field(default_factory=dict)


class Drift(StrictModel):
    """Compare the new data with reference data, column by column."""

    reference: DataUri | None = Field(
        None, description="Reference data (`s3://bucket/prefix/`); default: the last published data.")
    method: Literal["psi", "ks"] = "psi"
    threshold: float = Field(0.2, gt=0, description="PSI above (or KS p-value below) this counts as drift.")
    columns: list[str] = Field(min_length=1)


class DataSection(StrictModel):
    """Extract, transform, join and gate the data, then publish it as an Asset."""

    schedule: Schedule | None = Field(None, description="When to look for new data; default: manual.")
    sources: list[Source] = Field(min_length=1, max_length=64, description="One mapped extract task per source.")
    transforms: list[Transform] = Field(default_factory=list, max_length=32, description="Applied in order, to each source as it is extracted.")
    join: Annotated[Join, BeforeValidator(_join_shorthand, json_schema_input_type=Union[
        Literal["union", "inner", "left"], Join])] = Field(default_factory=Join)
    threshold: Threshold = Field(default_factory=Threshold)
    quality: Quality | None = None
    drift: Drift | None = Field(None, description="Drift above threshold also counts as a reason to retrain.")
    publishes: DataUri = Field(description="The Asset published when the gate passes (`s3://bucket/prefix/`); "
                                           "it triggers training.")
    wait_for: WaitForData | None = Field(None, description="Wait (deferred, in the triggerer) for new data to "
                                                           "arrive before extracting.")
    record_counts: RecordCounts | None = Field(None, description="Also write per-source record counts to a "
                                                                 "warehouse table.")
