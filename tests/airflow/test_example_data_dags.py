"""The data DAG of every example pipeline in `pipelines/`, run for real.

Each runs as `pipespec run SPEC --until data` runs it (dag.test() on the migrated
SQLite DB, the real steps) against stand-ins for its sources: the files shipped
with the examples, moto's S3 server (the specs' `aws_default` connection points
at it), a real PostgreSQL server (pgserver) through common-sql, and fakesnow
behind the real SnowflakeHook (SQLite through common-sql is the feedback
example's source: `make demo`, tests/test_e2e_scheduler.py). Every example publishes its Asset when its gate passes, and a
second run shows a block that says exactly why, with the Asset left alone.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipespec.local.local_env import ensure_db
from pipespec.schemas.check import check_file
from pipespec.compiler.compile import spec_hash
from pipespec.local.run import DagOutcome, run_pipeline
from pipespec.local import sample_data
from pipespec.tasklib.published import latest
from tests.support.fake_snowflake import fake_snowflake
from tests.support.postgres_server import postgres, postgres_socket_dir  # noqa: F401
from tests.support.s3_server import s3_server  # noqa: F401

pytestmark = pytest.mark.slow  # every example's data DAG against S3, PostgreSQL, fakesnow

from tests.support.paths import EXAMPLES  # noqa: E402
# The buckets the examples read and publish to; a real deployment has them already.
BUCKETS = ("growth", "forecasting", "xray-images", "content")


@pytest.fixture(scope="module")
def airflow_db():
    ensure_db()


@pytest.fixture
def examples(tmp_path, s3_server, monkeypatch, airflow_db):  # noqa: F811
    """A scratch copy of `pipelines/` whose S3 is the moto server."""
    copy = tmp_path / "pipelines"
    shutil.copytree(EXAMPLES, copy)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(copy))  # the DAG file dag.test() parses
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    for bucket in BUCKETS:
        s3_server.client().create_bucket(Bucket=bucket)
    return copy


RUN_HERE = {"churn", "weekly_retrain", "genai_content"}
RUN_ELSEWHERE = {"user_feedback",  # `make demo` and tests/test_e2e_scheduler.py (SQLite through common-sql)
                 "xray_classifier",  # tests/airflow/test_xray_seed.py: the S3 wait for archives of JPEGs
                 "genai_knowledge_base"}  # tests/airflow/test_knowledge_base_seed.py: mapped over folders


def test_every_example_with_a_data_section_is_run_for_real():
    with_data = {path.stem for path in EXAMPLES.glob("*.yaml") if check_file(path).spec.data is not None}
    assert with_data == RUN_HERE | RUN_ELSEWHERE


def run_data_dag(examples: Path, pipeline: str) -> DagOutcome:
    outcomes = run_pipeline(examples / f"{pipeline}.yaml", until="data", echo=lambda _: None)
    assert [o.dag_id for o in outcomes] == [f"{pipeline}__data"]
    assert outcomes[0].state == "success", outcomes[0].tasks  # a blocked gate is not a failure
    return outcomes[0]


def states(outcome: DagOutcome) -> dict[str, str]:
    return {task: state for task, label, state in outcome.tasks if not label}


def asset_events(uri: str) -> int:
    """How many times Airflow recorded an update of this Asset (what schedules the train DAG)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.sdk import Asset as AirflowAsset
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(AssetEvent)
                              .join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == AirflowAsset(uri).uri))  # as Airflow normalises it


class Asset:
    """One example's published Asset: Airflow's events for it and the publication in S3."""

    def __init__(self, uri: str):
        self.uri, self.events_before = uri, asset_events(uri)

    def new_events(self) -> int:
        return asset_events(self.uri) - self.events_before

    def published_run(self) -> str | None:
        published = latest(self.uri)
        return published.manifest["run_id"] if published else None


def assert_published(outcome: DagOutcome, asset: Asset, rows: int) -> dict:
    assert states(outcome)["publish"] == "success"
    assert outcome.outputs["measure"]["passed"] is True
    assert outcome.outputs["publish"]["rows"] == rows
    assert asset.new_events() == 1
    published = latest(asset.uri)
    assert published is not None and published.data.rows == rows
    assert published.data.uri.startswith(asset.uri)  # in the S3 server, under the Asset's prefix
    return published.manifest


def assert_blocked(outcome: DagOutcome, asset: Asset, reason: str, still_published: str) -> dict:
    measurement = outcome.outputs["measure"]
    assert states(outcome)["publish"] == "skipped"
    assert (measurement["passed"], measurement["reason"]) == (False, reason)
    assert asset.new_events() == 0  # no Asset event: training is not triggered
    assert asset.published_run() == still_published  # readers still see the last good data
    return measurement


# --- churn: a PostgreSQL warehouse through common-sql ------------------------------------------

def test_churn_reads_the_warehouse_and_blocks_on_a_quality_failure(examples, postgres, monkeypatch):
    with postgres.connect() as db:
        db.execute("create table customer_usage (customer text, f0 float8, f1 float8, f2 float8, f3 float8, "
                   "label text)")
        with db.cursor() as cursor:
            cursor.executemany("insert into customer_usage values (%(customer)s, %(f0)s, %(f1)s, %(f2)s, %(f3)s, "
                               "%(label)s)", [{"customer": f"c{i}", **row} for i, row in
                                              enumerate(sample_data.tabular_rows(1200, seed=3, features=4))])
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", postgres.connection_json())  # the spec's `conn_id`
    asset = Asset("s3://growth/churn/training/")

    first = run_data_dag(examples, "churn")
    manifest = assert_published(first, asset, rows=1200)
    assert first.outputs["measure"]["reason"] == "all gates passed"
    assert manifest["sources"]["usage"]["rows"] == 1200
    checked = check_file(examples / "churn.yaml")  # lineage: the spec and template that produced the data
    assert (manifest["pipeline"], manifest["spec_hash"]) == ("churn", spec_hash(checked.files))

    with postgres.connect() as db:  # a broken upstream job leaves f0 empty on every 10th customer
        db.execute("update customer_usage set f0 = null where substr(customer, 2)::int % 10 = 0")
    asset = Asset(asset.uri)
    second = run_data_dag(examples, "churn")
    assert_blocked(second, asset, "column `f0` is 10.0% null, above max_null_rate 5.0%",
                   still_published=manifest["run_id"])


# --- weekly_retrain: local CSV files, new records or drift ------------------------------------

def write_week(examples: Path, name: str, rows: list[dict]) -> None:
    with open(examples / "data" / "sales" / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_shipped_sales_week_is_the_generators_output():
    shipped = list(csv.DictReader(open(EXAMPLES / "data" / "sales" / "2026-w01.csv")))
    generated = sample_data.sales_rows(400, seed=1)
    assert shipped == [{key: str(value) for key, value in row.items()} for row in generated]


def test_weekly_retrain_publishes_on_enough_new_rows_or_on_drift(examples):
    asset = Asset("s3://forecasting/sales/curated/")
    first = run_data_dag(examples, "weekly_retrain")  # the shipped week: 400 new rows
    manifest = assert_published(first, asset, rows=400)
    assert first.outputs["measure"]["drift"] == {}  # nothing to compare with yet

    write_week(examples, "2026-w02", sample_data.sales_rows(100, seed=2))  # a short, ordinary week
    asset = Asset(asset.uri)
    second = run_data_dag(examples, "weekly_retrain")
    measurement = assert_blocked(second, asset, "100 new records, fewer than min_new_records 300 and no drift",
                                 still_published=manifest["run_id"])
    assert max(measurement["drift"].values()) < 0.2

    write_week(examples, "2026-w03", sample_data.sales_rows(150, seed=3, shift=10.0))  # f0 rebased upwards
    asset = Asset(asset.uri)
    third = run_data_dag(examples, "weekly_retrain")
    assert_published(third, asset, rows=650)
    measurement = third.outputs["measure"]
    assert measurement["new_rows"] == 250 < measurement["min_new_records"]  # published because of drift
    assert measurement["drifted"] is True and measurement["drift"]["f0"] > 0.2 > measurement["drift"]["f1"]


# --- genai_content: two S3 prefixes of JSON lines and a Snowflake query ------------------------

@pytest.fixture
def snowflake(monkeypatch):
    """fakesnow behind the real SnowflakeHook, as the spec's `snowflake_default` (CONTENT.ARTICLES)."""
    with fake_snowflake(monkeypatch, "snowflake_default", database="MARKETING", schema="CONTENT") as connection:
        yield connection


def test_genai_content_maps_over_s3_and_snowflake_sources(examples, s3_server, snowflake):  # noqa: F811
    def jsonl(rows: list[dict]) -> bytes:
        return "".join(json.dumps({"body": r["body"], "label": r["tone"]}) + "\n" for r in rows).encode()

    blog, newsletter = sample_data.articles(60, seed=1), sample_data.articles(40, seed=2)
    s3_server.put("content", "articles/blog/2026-11-20.jsonl", jsonl(blog))
    s3_server.put("content", "articles/newsletter/2026-11.jsonl", jsonl(newsletter))
    # The hourly run reads rows updated since the start of its data interval (the last whole hour).
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    warehouse = [(r["body"], r["tone"], now - timedelta(days=2 if i % 3 == 0 else 0, minutes=1))
                 for i, r in enumerate(sample_data.articles(45, seed=3))]
    snowflake.cursor().execute("create table articles (body varchar, tone varchar, updated_at timestamp)")
    snowflake.cursor().executemany("insert into articles values (%s, %s, %s)", warehouse)
    recent = [row for row in warehouse if row[2] > now - timedelta(hours=1)]
    asset = Asset("s3://content/curated/")

    first = run_data_dag(examples, "genai_content")
    extracted = {label for task, label, state in first.tasks if task == "extract" and state == "success"}
    assert extracted == {"blog", "newsletter", "warehouse"}
    long_enough = {name: sum(len(body) > 20 for body in bodies) for name, bodies in {
        "blog": [r["body"] for r in blog], "newsletter": [r["body"] for r in newsletter],
        "warehouse": [row[0] for row in recent]}.items()}
    assert first.outputs["measure"]["rows_by_source"] == long_enough  # renamed, short texts filtered out
    manifest = assert_published(first, asset, rows=sum(long_enough.values()))
    assert manifest["data"]["schema"] == {"text": "string", "label": "string", "_source": "string"}

    asset = Asset(asset.uri)  # nothing new in S3; the warehouse returns the same recent rows
    second = run_data_dag(examples, "genai_content")
    measurement = assert_blocked(second, asset, "0 new records, fewer than min_new_records 10",
                                 still_published=manifest["run_id"])
    assert measurement["rows_by_source"] == {"blog": 0, "newsletter": 0, "warehouse": long_enough["warehouse"]}
