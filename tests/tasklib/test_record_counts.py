"""Per-source record counts written to a warehouse table (seed 000's Snowflake metrics) through
the connection's SQL hook: fakesnow behind the real SnowflakeHook, and SQLite."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.record_counts import write_record_counts
from pipespec.tasklib.errors import PermanentFailure
from tests.support.fake_snowflake import fake_snowflake

pytestmark = pytest.mark.airflow  # the SQL hooks are Airflow providers

MEASURED = {"rows_by_source": {"zendesk": 120, "slack": 45}}


def run(run_id: str = "scheduled__2026-01-01") -> RunContext:
    return RunContext(dag_id="feedback__data", task_id="record_counts", run_id=run_id)


def test_counts_land_in_snowflake_and_a_rerun_replaces_only_its_own_rows(monkeypatch):
    with fake_snowflake(monkeypatch, "snowflake_default", database="SANDBOX", schema="DEMOUSER") as connection:
        write_record_counts(run(), pipeline="feedback", conn_id="snowflake_default", table="RECORD_COUNTS",
                            measurement=MEASURED)
        write_record_counts(run("manual__2"), pipeline="feedback", conn_id="snowflake_default",
                            table="RECORD_COUNTS", measurement={"rows_by_source": {"zendesk": 7}})
        result = write_record_counts(run(), pipeline="feedback", conn_id="snowflake_default",
                                     table="RECORD_COUNTS", measurement=MEASURED)
        assert result == {"table": "RECORD_COUNTS", "rows": 2}
        rows = connection.cursor().execute(
            "select run_id, source, records from RECORD_COUNTS order by run_id, source").fetchall()
    assert rows == [("manual__2", "zendesk", 7), ("scheduled__2026-01-01", "slack", 45),
                    ("scheduled__2026-01-01", "zendesk", 120)]


def test_any_common_sql_database_works(monkeypatch, tmp_path):
    database = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    write_record_counts(run(), pipeline="feedback", conn_id="warehouse", table="counts", measurement=MEASURED)
    with sqlite3.connect(database) as db:
        assert db.execute("select source, records from counts order by source").fetchall() == \
            [("slack", 45), ("zendesk", 120)]


@pytest.mark.parametrize("table", ["counts; drop table x", "counts--", "a.b.c.d", "1counts", "\"quoted\""])
def test_a_table_name_is_an_identifier_never_sql(monkeypatch, tmp_path, table):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}))
    with pytest.raises(PermanentFailure, match="not a table name"):
        write_record_counts(run(), pipeline="feedback", conn_id="warehouse", table=table, measurement=MEASURED)


def test_a_connection_that_is_no_database_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HOOKS", json.dumps({"conn_type": "http", "host": "https://example.com"}))
    with pytest.raises(PermanentFailure, match="not a SQL database"):
        write_record_counts(run(), pipeline="feedback", conn_id="hooks", table="counts", measurement=MEASURED)
