"""A real PostgreSQL server for tests: pgserver's binaries, on a Unix socket in a temporary directory.

Use it like the S3 server: `from tests.support.postgres_server import postgres, postgres_socket_dir  # noqa: F401`
and ask for the `postgres` fixture. One server runs per test process (it starts in about 3 s); every
test gets a fresh database, and the connection `warehouse_pg` (env `AIRFLOW_CONN_WAREHOUSE_PG`)
points at it, so steps reach it exactly as they reach PostgreSQL: through common-sql's PostgresHook.
"""

from __future__ import annotations

import itertools
import logging
import json
import tempfile
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

CONN_ID = "warehouse_pg"
_databases = itertools.count()


@dataclass(frozen=True)
class Postgres:
    socket_dir: str
    database: str
    conn_id: str = CONN_ID

    def connection_json(self) -> str:
        """An Airflow connection (the `AIRFLOW_CONN_<ID>` JSON form); a host that is a path is a socket directory."""
        return json.dumps({"conn_type": "postgres", "host": self.socket_dir, "login": "postgres",
                           "schema": self.database, "port": 5432})

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(host=self.socket_dir, user="postgres", dbname=self.database, autocommit=True)


@pytest.fixture(scope="session")
def postgres_socket_dir() -> Iterator[str]:
    """The server, started on first use and stopped at the end of the session."""
    import pgserver

    # pgserver also stops the server from an atexit hook, after pytest closed the log streams.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(tempfile.mkdtemp(prefix="pipespec-pg-"), cleanup_mode="stop")
    yield parse_qs(urlparse(server.get_uri()).query)["host"][0]  # postgresql://postgres:@/postgres?host=<dir>
    server.cleanup()


@pytest.fixture
def postgres(postgres_socket_dir: str, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    import psycopg

    socket_dir = postgres_socket_dir
    database = f"test_{next(_databases)}"
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f"drop database if exists {database}")
        admin.execute(f"create database {database}")
    server = Postgres(socket_dir, database)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection_json())
    return server
