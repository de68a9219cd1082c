"""A real S3 API for tests: moto's server on 127.0.0.1, reached through an Airflow connection.

Use it from a test module with `from tests.support.s3_server import s3_server  # noqa: F401`
and ask for the `s3_server` fixture. One server runs per test session; every test
starts from an empty S3 (moto's state is reset) and finds the connection
`aws_test` (env `AIRFLOW_CONN_AWS_TEST`) pointing at it. Nothing else is faked:
steps reach it exactly as they reach S3, through `conn_id`.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

CONN_ID = "aws_test"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    conn_id: str = CONN_ID

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def put(self, bucket: str, key: str, body: bytes) -> None:
        """Write one object, creating the bucket on first use."""
        client = self.client()
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=body)

    def connection_json(self) -> str:
        """An Airflow connection (the `AIRFLOW_CONN_<ID>` JSON form) that reaches this server."""
        return json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                           "extra": {"endpoint_url": self.endpoint, "region_name": REGION}})

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


@functools.cache
def _endpoint() -> str:
    """Start the server once per test process (a daemon thread: it ends with the process).

    A plain cached function rather than a session fixture, so that importing
    `s3_server` alone is enough."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> S3Server:
    server = S3Server(_endpoint())
    server.reset()
    monkeypatch.delenv("PIPESPEC_STORAGE_ROOT", raising=False)  # the real S3 path, not the local mapping
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection_json())
    return server
