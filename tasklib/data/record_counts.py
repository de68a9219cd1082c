"""Side sink: per-source record counts written to a warehouse table (seed 000's
`write_metrics_to_snowflake`), through the connection's own SQL hook (Snowflake, PostgreSQL,
SQLite, any common-sql database).

One row per source and run: (pipeline, run_id, source, records, measured_at). A rerun of the same
run replaces its own rows and nothing else, in one transaction. The table name comes from the
spec, so it is checked as a plain (optionally schema-qualified) identifier before it reaches SQL;
every value goes in as a bound parameter.
"""

from __future__ import annotations

import re
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

from pipespec.schemas.models.lifecycle import TABLE_NAME
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure

COLUMNS = ("pipeline", "run_id", "source", "records", "measured_at")


def write_record_counts(ctx: RunContext, *, pipeline: str, conn_id: str, table: str,
                        measurement: dict) -> dict[str, Any]:
    """Insert this run's per-source record counts into `table`; {"table", "rows"}."""
    if not re.match(TABLE_NAME, table):  # checked by `pipespec check` too; the IR cache is a file
        raise PermanentFailure(f"record_counts.table `{table}` is not a table name (letters, digits, `_`, "
                               f"up to database.schema.table)")
    counts = measurement.get("rows_by_source") or {}
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    rows = [(pipeline, ctx.run_id, source, int(records or 0), now) for source, records in sorted(counts.items())]
    hook = _sql_hook(conn_id)
    mark = hook.placeholder
    with closing(hook.get_conn()) as connection, closing(connection.cursor()) as cursor:
        cursor.execute(f"create table if not exists {table} (pipeline varchar(250), run_id varchar(250), "
                       f"source varchar(250), records bigint, measured_at timestamp)")
        cursor.execute(f"delete from {table} where pipeline = {mark} and run_id = {mark}", (pipeline, ctx.run_id))
        if rows:
            cursor.executemany(f"insert into {table} ({', '.join(COLUMNS)}) values ({', '.join([mark] * len(COLUMNS))})",
                               rows)
        connection.commit()
    return {"table": table, "rows": len(rows)}


def _sql_hook(conn_id: str) -> Any:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise PermanentFailure(f"connection `{conn_id}` is not a SQL database connection")
    return hook
