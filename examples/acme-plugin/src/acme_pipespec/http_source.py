"""`acme_http_jsonl`: a source under pipespec's source contract (pipespec.tasklib.data.extract.SourceRead).

It yields Arrow tables; pipespec unifies their schemas, applies the spec's transforms, writes the
run's Parquet and publishes it like any built-in source's. A line that is not a JSON object goes
to `read.bad_rows`, which stops the extract or counts and drops the row, as the spec's
`on_bad_rows` says: a bad row is reported, never lost silently. The URL comes from the Airflow
connection; error messages name the connection and the line, never the row's content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

TIMEOUT_S = 60


def read_http_jsonl(read: Any) -> Iterator[Any]:
    import pyarrow as pa
    from airflow.providers.http.hooks.http import HttpHook

    params = read.params
    hook = HttpHook(method="GET", http_conn_id=params["conn_id"])
    response = hook.run(endpoint=params["endpoint"], extra_options={"stream": True, "timeout": TIMEOUT_S})
    origin = f"connection `{params['conn_id']}` {params['endpoint'] or '/'}"
    rows: list[dict[str, Any]] = []
    with response:
        for number, line in enumerate(response.iter_lines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                read.bad_rows.reject(origin, number, f"not JSON ({type(error).__name__})")
                continue
            if not isinstance(value, dict):
                read.bad_rows.reject(origin, number, f"expected a JSON object, got {type(value).__name__}")
                continue
            rows.append(value)
            if len(rows) >= params["batch_rows"]:
                yield pa.Table.from_pylist(rows)
                rows = []
    if rows:
        yield pa.Table.from_pylist(rows)
