"""Snowflake SQL for tests: fakesnow (DuckDB, in this process) behind the real SnowflakeHook.

fakesnow patches `snowflake.connector.connect`, so steps reach it through the Airflow
connection exactly as they reach Snowflake; dag.test() runs tasks in this process too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def fake_snowflake(monkeypatch: pytest.MonkeyPatch, conn_id: str, database: str, schema: str) -> Iterator[Any]:
    """The connection `conn_id` (env `AIRFLOW_CONN_<ID>`) and an open connection to create tables with."""
    import fakesnow

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "snowflake", "login": "etl", "password": "secret", "schema": schema,
        "extra": {"account": "acme", "database": database, "warehouse": "wh"}}))
    with fakesnow.patch():
        import snowflake.connector

        with snowflake.connector.connect(account="acme", user="etl", password="secret", database=database,
                                         schema=schema) as connection:
            yield connection
