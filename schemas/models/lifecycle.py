"""Spec sections for what the seed systems do around training (issue: every seed, faithfully):
evaluation against a live endpoint, decisions on several metrics, a cost gate before a paid
fine-tune, per-source record counts written to a warehouse, waiting for data to arrive, and
DAG-level controls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipespec.schemas.models.common import Duration, StrictModel

# A plain table name, optionally schema- or database-qualified: it is spliced into SQL, so no quotes.
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127}){0,2}$"


class LiveEvaluation(StrictModel):
    """Score the served models over an OpenAI-compatible chat/completions endpoint (seed 000)."""

    baseline: bool = Field(True, description="Also score the base model first, as the baseline.")
    conn_id: str | None = Field(None, description="An OpenAI-compatible server (host: the …/v1 URL, password: the "
                                                  "key). Default: a temporary evaluation service of the "
                                                  "anyscale_service rollout target, terminated afterwards.")
    concurrency: int = Field(8, ge=1, le=64, description="Requests in flight at once.")
    timeout: Duration = Field("60s", description="Per request.")
    max_retries: int = Field(4, ge=0, le=10, description="Per request, on 429 and 5xx, with backoff.")


class DecisionRule(StrictModel):
    """One metric of a decision: its floor and the improvement over the champion it needs."""

    metric: str
    floor: float | None = Field(None, description="Never deploy below this.")
    min_improvement: float = Field(0.0, ge=0, description="Needed over the champion on this metric.")
    direction: Literal["max", "min"] | None = Field(None, description="Default: the metric's natural direction.")


class Decision(StrictModel):
    """Decide on several metrics: every floor holds; `all` needs every improvement, `any` one."""

    combine: Literal["all", "any"] = "all"
    rules: list[DecisionRule] = Field(min_length=1, max_length=10)


class CostGate(StrictModel):
    """Block a paid fine-tune whose estimated cost (tokens × price) is over budget (seed 002)."""

    budget_usd: float = Field(gt=0)
    usd_per_million_tokens: float = Field(gt=0, description="The provider's training price.")


class RecordCounts(StrictModel):
    """Write per-source record counts to a warehouse table after each data run (seed 000)."""

    conn_id: str = Field(description="A SQL database connection (Snowflake, PostgreSQL, ...).")
    table: Annotated[str, Field(pattern=TABLE_NAME, description="`TABLE`, `SCHEMA.TABLE` or `DB.SCHEMA.TABLE`.")]


class WaitForData(StrictModel):
    """Wait in the triggerer for new data before the data run starts (seed 001's S3 sensor)."""

    uri: str = Field(description="An s3:// key or prefix; `*` matches within a key (e.g. s3://xray/drop/*.tgz).",
                     pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s{}]*$")
    conn_id: str = "aws_default"
    timeout: Duration = Field("6h", description="Fail the run when nothing arrived by then.")
    poke_interval: Duration = Field("5m")


class DagControls(StrictModel):
    """Airflow's DAG-level controls, for every DAG of the spec."""

    max_active_runs: int | None = Field(None, ge=1, le=16)
    max_consecutive_failed_dag_runs: int | None = Field(
        None, ge=1, le=1000, description="Pause the DAG after this many failed runs in a row (seed 002).")
    workspace: Literal["keep", "clean"] = Field(
        "keep", description="`clean`: each run's intermediate files are deleted by a teardown task when the run "
                            "ends, even on failure, and a setup task removes what killed runs left (seed 003).")
