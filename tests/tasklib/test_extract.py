"""`data.extract` against real inputs: local files, S3 (moto's server through an
Airflow connection), Snowflake SQL (fakesnow, through the Airflow hooks), and a
real previous publication for `only_new`, SQLite and a real PostgreSQL server (pgserver)
through common-sql."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.extract import extract
from pipespec.tasklib.published import mark_latest, run_prefix, write_manifest
from tests.support.fake_snowflake import fake_snowflake
from tests.support.postgres_server import postgres, postgres_socket_dir
from tests.support.s3_server import s3_server

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

CTX = RunContext(dag_id="p__data", task_id="extract", run_id="scheduled__2026-01-02T00:00:00+00:00", map_index=0,
                 data_interval_start="2026-01-01T00:00:00+00:00", data_interval_end="2026-01-02T00:00:00+00:00")
ROWS = [{"id": 1, "text": "late parcel", "label": "shipping"},
        {"id": 2, "text": "refund please", "label": "billing"},
        {"id": 3, "text": "wrong size", "label": "returns"}]


@pytest.fixture(autouse=True)
def work(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPESPEC_STORAGE_ROOT", raising=False)
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))  # for the file:// publications
    monkeypatch.chdir(tmp_path)  # the spec folder of `run`: local sources are read only inside it
    return tmp_path


def local(path: Path) -> str:
    """A local source's `path` as a spec writes it: relative to the spec's folder."""
    return os.path.relpath(path)


def run(source: dict, spec_dir: Path | str = ".", publishes: str = "s3://unused/curated/", ctx=CTX) -> dict:
    return extract(ctx, pipeline="p", spec_dir=str(spec_dir), publishes=publishes, source=source)


def rows_of(result: dict) -> list[dict]:
    return storage.read_table(result).to_pylist()


def encode(rows: list[dict], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    sink = pa.BufferOutputStream()
    (pacsv.write_csv if fmt == "csv" else pq.write_table)(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


def write(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# --- local files ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_file_becomes_run_scoped_parquet(tmp_path, fmt):
    write(tmp_path / "spec" / f"data/feedback.{fmt}", encode(ROWS, fmt), mtime=1_767_225_600)  # 2026-01-01
    result = run({"name": "zendesk", "type": "local", "path": f"data/feedback.{fmt}", "format": fmt},
                 spec_dir=tmp_path / "spec")
    assert result["uri"] == storage.work_uri(CTX, "p", "zendesk.parquet")
    assert "/p/p__data/" in result["uri"] and result["uri"].endswith("/extract-0/zendesk.parquet")
    assert rows_of(result) == ROWS
    assert (result["rows"], result["files"], result["new_files"], result["bad_rows"]) == (3, 1, 1, 0)
    assert result["schema"] == {"id": "int64", "text": "string", "label": "string"}
    assert result["source"] == "zendesk"
    assert result["watermark"] == "2026-01-01T00:00:00+00:00"
    json.dumps(result)  # small and JSON-serialisable: it goes through XCom


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_directory_reads_every_file_of_the_format_recursively_in_path_order(tmp_path, fmt):
    folder = tmp_path / "drop"
    write(folder / f"b.{fmt}", encode(ROWS[1:2], fmt), mtime=1_767_225_600)
    write(folder / f"a.{fmt}", encode(ROWS[:1], fmt), mtime=1_767_312_000)  # newest: the watermark
    write(folder / f"sub/c.{fmt}", encode(ROWS[2:], fmt), mtime=1_767_225_600)
    write(folder / "notes.txt", b"not data")
    write(folder / "_SUCCESS", b"")
    write(folder / f".tmp-half-written.{fmt}", b"{garbage")
    write(folder / f"_staging/x.{fmt}", b"{garbage")
    result = run({"name": "drop", "type": "local", "path": local(folder), "format": fmt})
    assert rows_of(result) == ROWS  # a, b, sub/c
    assert result["files"] == 3
    assert result["watermark"] == "2026-01-02T00:00:00+00:00"


def test_gzipped_jsonl_is_decompressed(tmp_path):
    write(tmp_path / "d/part.jsonl.gz", gzip.compress(encode(ROWS, "jsonl")))
    assert rows_of(run({"name": "z", "type": "local", "path": local(tmp_path / "d"), "format": "jsonl"})) == ROWS


def test_files_with_different_columns_are_aligned_by_name(tmp_path):
    write(tmp_path / "d/1.jsonl", b'{"id": 1, "text": "a"}\n')
    write(tmp_path / "d/2.jsonl", b'{"id": 2.5, "label": "x"}\n{"id": 3, "label": null}\n')
    result = run({"name": "z", "type": "local", "path": local(tmp_path / "d"), "format": "jsonl"})
    assert result["schema"] == {"id": "double", "text": "string", "label": "string"}
    assert rows_of(result) == [{"id": 1.0, "text": "a", "label": None}, {"id": 2.5, "text": None, "label": "x"},
                               {"id": 3.0, "text": None, "label": None}]


def test_conflicting_column_types_name_the_column_and_both_files(tmp_path):
    first = write(tmp_path / "d/1.csv", b"id,text\n1,a\n")
    second = write(tmp_path / "d/2.csv", b"id,text\nx7,b\n")
    with pytest.raises(ValueError, match="column `id` is int64 in .* but string in ") as error:
        run({"name": "z", "type": "local", "path": local(tmp_path / "d"), "format": "csv"})
    assert local(first) in str(error.value) and local(second) in str(error.value)


def test_content_hash_does_not_depend_on_how_the_input_is_split(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "BATCH_ROWS", 2)  # several row groups from 3 rows
    write(tmp_path / "one/all.jsonl", encode(ROWS, "jsonl"))
    for index, row in enumerate(ROWS):
        write(tmp_path / f"three/{index}.jsonl", encode([row], "jsonl"))
    one = run({"name": "z", "type": "local", "path": local(tmp_path / "one"), "format": "jsonl"})
    three = run({"name": "z", "type": "local", "path": local(tmp_path / "three"), "format": "jsonl"},
                ctx=RunContext(dag_id="p__data", task_id="extract", run_id="other"))
    assert one["uri"] != three["uri"] and one["sha256"] == three["sha256"]
    assert [pq.ParquetFile(one["uri"].removeprefix("file://")).metadata.row_group(i).num_rows
            for i in range(2)] == [2, 1]
    assert rows_of(three) == ROWS


def test_rerun_of_the_same_run_overwrites_its_own_output(tmp_path):
    source = {"name": "z", "type": "local", "path": local(tmp_path / "in.jsonl"), "format": "jsonl"}
    write(tmp_path / "in.jsonl", encode(ROWS, "jsonl"))
    first = run(source)
    write(tmp_path / "in.jsonl", encode(ROWS[:1], "jsonl"))
    second = run(source)
    assert second["uri"] == first["uri"] and second["rows"] == 1 and second["sha256"] != first["sha256"]
    output = Path(second["uri"].removeprefix("file://"))
    assert [p.name for p in output.parent.iterdir()] == ["z.parquet"]  # no temporary files left behind
    assert hashlib.sha256(output.read_bytes()).hexdigest() == second["sha256"]  # checkable with sha256sum
    assert rows_of(second) == ROWS[:1]


# --- bad rows ---------------------------------------------------------------

BAD_JSONL = b'{"id": 1, "text": "ok"}\n{"id": 2, "text": \n\n[1, 2]\n{"id": 5, "text": "fine"}\n'


def test_malformed_jsonl_line_fails_with_file_and_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", BAD_JSONL)
    with pytest.raises(ValueError, match=rf"^{local(path)}:2: malformed JSON: Expecting value"):
        run({"name": "z", "type": "local", "path": local(path), "format": "jsonl"})


def test_malformed_jsonl_lines_are_counted_and_dropped_with_skip(tmp_path):
    path = write(tmp_path / "bad.jsonl", BAD_JSONL)
    result = run({"name": "z", "type": "local", "path": local(path), "format": "jsonl", "on_bad_rows": "skip"})
    assert result["bad_rows"] == 2  # line 2 (truncated) and line 4 (not an object); line 3 is blank
    assert rows_of(result) == [{"id": 1, "text": "ok"}, {"id": 5, "text": "fine"}]


def test_malformed_csv_row_fails_with_file_and_line_or_is_skipped(tmp_path):
    path = write(tmp_path / "bad.csv", b"id,text\n1,ok\n2,too,many\n3,fine\n")
    with pytest.raises(ValueError, match=rf"^{local(path)}:3: malformed CSV row: expected 2 fields, got 3"):
        run({"name": "z", "type": "local", "path": local(path), "format": "csv"})
    result = run({"name": "z", "type": "local", "path": local(path), "format": "csv", "on_bad_rows": "skip"})
    assert result["bad_rows"] == 1 and rows_of(result) == [{"id": 1, "text": "ok"}, {"id": 3, "text": "fine"}]


def test_jsonl_column_with_mixed_value_types_is_named(tmp_path):
    path = write(tmp_path / "mixed.jsonl", b'{"id": 1}\n{"id": "two"}\n')
    with pytest.raises(ValueError, match=rf"^{local(path)}:1-2: column `id` mixes value types"):
        run({"name": "z", "type": "local", "path": local(path), "format": "jsonl"})


# --- missing and empty ------------------------------------------------------

def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl: no such file or directory"):
        run({"name": "z", "type": "local", "path": "nowhere.jsonl", "format": "jsonl"}, spec_dir=tmp_path)


def test_empty_directory_is_zero_rows_not_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run({"name": "z", "type": "local", "path": local(tmp_path / "empty"), "format": "jsonl"})
    assert (result["rows"], result["files"], result["watermark"], result["schema"]) == (0, 0, None, {})
    assert storage.read_table(result).num_rows == 0


def test_header_only_csv_keeps_its_columns(tmp_path):
    write(tmp_path / "h.csv", b"id,text\n")
    result = run({"name": "z", "type": "local", "path": local(tmp_path / "h.csv"), "format": "csv"})
    assert result["rows"] == 0 and list(result["schema"]) == ["id", "text"] and result["files"] == 1


# --- only_new ---------------------------------------------------------------

def publish_watermark(publishes: str, source: str, watermark: str) -> None:
    """A previous publication as data.publish leaves it: manifest with per-source watermarks, then _LATEST."""
    prefix = run_prefix(publishes, "previous_run")
    write_manifest(prefix, {"run_id": "previous_run", "data": {"uri": f"{prefix}/data.parquet", "rows": 1,
                                                                "schema": {}, "sha256": "x"},
                            "sources": {source: {"rows": 1, "watermark": watermark}}})
    mark_latest(publishes, prefix)


def test_only_new_reads_files_modified_after_the_published_watermark(tmp_path):
    folder, publishes = tmp_path / "drop", (tmp_path / "curated").as_uri()
    write(folder / "1.jsonl", encode(ROWS[:1], "jsonl"), mtime=1_767_225_600)  # 2026-01-01
    write(folder / "2.jsonl", encode(ROWS[1:2], "jsonl"), mtime=1_767_312_000)  # 2026-01-02
    write(folder / "3.jsonl", encode(ROWS[2:], "jsonl"), mtime=1_767_398_400)  # 2026-01-03
    source = {"name": "drop", "type": "local", "path": local(folder), "format": "jsonl", "only_new": True}

    first = run(source, publishes=publishes)  # nothing published yet: everything is new
    assert (first["files"], first["new_files"], first["rows"]) == (3, 3, 3)

    publish_watermark(publishes, "drop", "2026-01-02T00:00:00+00:00")
    later = run(source, publishes=publishes)
    assert (later["files"], later["new_files"]) == (1, 1)
    assert rows_of(later) == ROWS[2:] and later["watermark"] == "2026-01-03T00:00:00+00:00"

    publish_watermark(publishes, "drop", later["watermark"])
    idle = run(source, publishes=publishes)
    assert (idle["files"], idle["rows"]) == (0, 0)
    assert idle["watermark"] == "2026-01-03T00:00:00+00:00"  # kept, so the next run starts from it


# --- S3 through an Airflow connection (moto server) ---------------------------

def test_s3_prefix_reads_every_object_through_the_connection(s3_server):
    s3_server.put("feedback", "zendesk/2026/01/a.jsonl", encode(ROWS[:2], "jsonl"))
    s3_server.put("feedback", "zendesk/2026/01/b.jsonl", encode(ROWS[2:], "jsonl"))
    s3_server.put("feedback", "zendesk/_SUCCESS", b"")
    s3_server.put("feedback", "other/c.jsonl", b'{"id": 99}\n')
    result = run({"name": "zendesk", "type": "s3", "uri": "s3://feedback/zendesk/", "format": "jsonl",
                  "conn_id": s3_server.conn_id})
    assert rows_of(result) == ROWS and result["files"] == 2
    newest = max(s3_server.client().head_object(Bucket="feedback", Key=f"zendesk/2026/01/{k}")["LastModified"]
                 for k in ("a.jsonl", "b.jsonl"))
    assert datetime.fromisoformat(result["watermark"]) == newest.astimezone(timezone.utc)


def test_s3_single_parquet_object(s3_server):
    s3_server.put("feedback", "exports/all.parquet", encode(ROWS, "parquet"))
    result = run({"name": "all", "type": "s3", "uri": "s3://feedback/exports/all.parquet", "format": "parquet",
                  "conn_id": s3_server.conn_id})
    assert rows_of(result) == ROWS and result["files"] == 1


def test_s3_missing_bucket_is_named(s3_server):
    with pytest.raises(FileNotFoundError, match=r"s3://no-such-bucket/x/: bucket `no-such-bucket` does not exist"):
        run({"name": "z", "type": "s3", "uri": "s3://no-such-bucket/x/", "format": "jsonl",
             "conn_id": s3_server.conn_id})


def test_s3_connection_is_resolved_by_s3hook_including_an_assumed_role(s3_server, monkeypatch):  # noqa: F811
    """Whatever the connection says applies as it does for boto3: here a role to assume (STS on the
    same moto server), whose temporary credentials, not the connection's keys, read the source."""
    connection = json.loads(s3_server.connection_json())
    connection["extra"].update(role_arn="arn:aws:iam::123456789012:role/pipespec-reader",
                               service_config={"sts": {"endpoint_url": s3_server.endpoint}})
    monkeypatch.setenv("AIRFLOW_CONN_AWS_READER", json.dumps(connection))
    options = storage.s3_options("aws_reader")
    assert options["session_token"] and options["access_key"] != "testing"  # from STS AssumeRole
    assert (options["endpoint_override"], options["scheme"], options["region"]) == (
        s3_server.endpoint.removeprefix("http://"), "http", "us-east-1")
    s3_server.put("feedback", "zendesk/a.jsonl", b'{"id": 1}\n{"id": 2}\n')
    result = run({"name": "z", "type": "s3", "uri": "s3://feedback/zendesk/", "format": "jsonl",
                  "conn_id": "aws_reader"})
    assert result["rows"] == 2


def test_s3_missing_prefix_is_named(s3_server):
    s3_server.put("feedback", "zendesk/a.jsonl", b'{"id": 1}\n')
    with pytest.raises(FileNotFoundError, match=r"s3://feedback/slack/: no object at or under this prefix"):
        run({"name": "z", "type": "s3", "uri": "s3://feedback/slack/", "format": "jsonl",
             "conn_id": s3_server.conn_id})


# --- SQL ----------------------------------------------------------------------

@pytest.fixture
def snowflake(monkeypatch):
    """fakesnow behind the real SnowflakeHook; a table with messages of three days."""
    with fake_snowflake(monkeypatch, "warehouse", database="FEEDBACK", schema="SUPPORT") as connection:
        connection.cursor().execute("create table slack (text varchar, label varchar, ts timestamp, "
                                    "score number(5, 2), \"MixedCase\" int)")
        connection.cursor().execute(
            "insert into slack values ('too slow', 'perf', '2025-12-31 23:00:00', 0.5, 1), "
            "('card declined', 'billing', '2026-01-01 08:00:00', 1.25, 2), "
            "('new phone who dis', 'other', '2026-01-02 00:00:00', 2, 3)")
        yield


QUERY = ("select text, label, score, \"MixedCase\" from slack where ts >= '{{ data_interval_start }}' "
         "and ts < '{{ data_interval_end }}' order by ts")


def test_snowflake_query_is_rendered_with_the_data_interval(snowflake):
    result = run({"name": "slack", "type": "snowflake", "conn_id": "warehouse", "query": QUERY})
    # Unquoted (upper-cased) names come back as the spec wrote them; quoted ones are kept.
    assert result["schema"] == {"text": "string", "label": "string", "score": "decimal128(3, 2)", "MixedCase": "int64"}
    assert [(r["text"], str(r["score"])) for r in rows_of(result)] == [("card declined", "1.25")]
    assert (result["files"], result["watermark"]) == (0, None)


def test_sql_source_goes_through_the_connections_common_sql_hook(snowflake):
    # `type: sql` resolves the hook from the connection's type (here Snowflake's DbApiHook).
    result = run({"name": "slack", "type": "sql", "conn_id": "warehouse", "query": QUERY.replace(
        "'{{ data_interval_end }}'", "'2027-01-01'")})
    assert [r["TEXT"] for r in rows_of(result)] == ["card declined", "new phone who dis"]


def test_query_with_no_rows_keeps_its_columns(snowflake):
    result = run({"name": "slack", "type": "snowflake", "conn_id": "warehouse",
                  "query": "select text, label from slack where 1 = 0"})
    assert result["rows"] == 0 and list(result["schema"]) == ["text", "label"]


def test_sql_connection_without_an_installed_hook_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LEGACY", "mysql://u:p@127.0.0.1:1/db")
    with pytest.raises(ValueError, match="connection `legacy` has type `mysql`, for which no hook is installed"):
        run({"name": "legacy", "type": "sql", "conn_id": "legacy", "query": "select 1"})


@pytest.mark.parametrize("query", [
    "select * from t where ts > '{{ ds }}'",
    "select '{{ var.value.password }}'",
    "select '{{ data_interval_start.__class__ }}'",
    "select '{{ data_interval_start'",
    # Evaluated by any template engine, sandboxed or not: a huge string or 10^10 iterations on a shared worker.
    "select '{{ data_interval_start * 9999999999999 }}'",
    "select 1 {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "select 1 {# a comment #}",
])
def test_query_templates_know_only_the_data_interval(query):
    # Refused like any data-access rule the spec breaks (a stale cache or a hand-run DAG reaching the step).
    with pytest.raises(PermissionError, match=r"may only use `\{\{ data_interval_start \}\}` and `\{\{ data_interval_end"):
        run({"name": "q", "type": "sql", "conn_id": "unused", "query": query})


def test_query_using_the_interval_in_a_run_without_one_fails_clearly():
    manual = RunContext(dag_id="p__data", task_id="extract", run_id="manual")
    with pytest.raises(ValueError, match="uses `{{ data_interval_end }}`, but this run has no data interval"):
        run({"name": "q", "type": "sql", "conn_id": "unused", "query": "select '{{ data_interval_end }}'"},
            ctx=manual)


def test_demo_mode_maps_s3_to_local_disk_and_still_names_s3_uris(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    write(tmp_path / "store/feedback/zendesk/a.jsonl", encode(ROWS, "jsonl"))
    write(tmp_path / "store/feedback/zendesk/b.jsonl", b'{"id": 4}\n{oops\n')
    source = {"name": "zendesk", "type": "s3", "uri": "s3://feedback/zendesk/", "format": "jsonl"}
    with pytest.raises(ValueError, match=r"^s3://feedback/zendesk/b.jsonl:2: malformed JSON"):
        run(source)
    assert run({**source, "on_bad_rows": "skip"})["rows"] == 4
    with pytest.raises(FileNotFoundError, match=r"^s3://feedback/slack/: no such file or directory"):
        run({**source, "uri": "s3://feedback/slack/"})


def test_interval_is_printed_as_airflow_prints_it():
    from pipespec.tasklib.data.sql_render import render_query

    assert render_query("ts >= '{{ data_interval_start }}' and ts < '{{ data_interval_end }}'", CTX, "q") == \
        "ts >= '2026-01-01 00:00:00+00:00' and ts < '2026-01-02 00:00:00+00:00'"


def test_repeated_csv_header_is_an_error_not_a_silent_null_column(tmp_path):
    path = write(tmp_path / "dup.csv", b"id,text,id\n1,a,2\n")
    with pytest.raises(ValueError, match=rf"^{local(path)}: column\(s\) `id` appear more than once"):
        run({"name": "z", "type": "local", "path": local(path), "format": "csv"})


def test_sqlite_through_common_sql_with_interval_templating(tmp_path, monkeypatch):
    from pipespec.local.sample_data import feedback_rows, write_slack_db

    database = write_slack_db(feedback_rows(30, seed=5), tmp_path / "slack.db")
    # The SQLite provider reads the database path from the connection's host.
    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_TEST_DB", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    source = {"name": "slack", "type": "sql", "conn_id": "feedback_test_db",
              "query": "select text, label from slack_messages where ts < '{{ data_interval_end }}' order by ts"}
    ctx = RunContext(dag_id="p__data", task_id="extract", run_id="r1",
                     data_interval_start="2026-01-01T00:00:00+00:00", data_interval_end="2026-01-10T00:00:00+00:00")
    result = run(source, ctx=ctx)
    expected = [r for r in feedback_rows(30, seed=5) if r["ts"] < "2026-01-10 00:00:00+00:00"]
    assert 0 < result["rows"] == len(expected) < 30
    assert rows_of(result) == [{"text": r["text"], "label": r["label"]} for r in expected]


def test_postgresql_through_common_sql_streams_with_a_server_side_cursor(postgres, monkeypatch):  # noqa: F811
    from pipespec.tasklib.data import extract as extract_module

    with postgres.connect() as db:
        db.execute("create table tickets (id int, body text, amount numeric(8, 2), urgent boolean, "
                   "opened timestamptz)")
        db.execute("insert into tickets select n, 'ticket ' || n, n * 1.25, n % 2 = 0, "
                   "timestamptz '2025-12-31 12:00:00+00' + n * interval '1 hour' from generate_series(1, 50) n")
        db.execute("insert into tickets values (51, null, null, null, timestamptz '2026-01-01 23:00:00+00')")
    cursors = []
    streaming_cursor = extract_module._streaming_cursor
    monkeypatch.setattr(extract_module, "_streaming_cursor", lambda c: cursors.append(streaming_cursor(c)) or cursors[-1])
    source = {"name": "tickets", "type": "sql", "conn_id": postgres.conn_id,
              "query": "select id, body, amount, urgent, opened from tickets where opened >= '{{ data_interval_start }}'"
                       " and opened < '{{ data_interval_end }}' order by id"}
    result = run(source)  # 2026-01-01: ids 12..35 and 51
    assert result["schema"] == {"id": "int64", "body": "string", "amount": "decimal128(4, 2)", "urgent": "bool",
                                "opened": "timestamp[us, tz=Etc/UTC]"}
    got = rows_of(result)
    assert [r["id"] for r in got] == [*range(12, 36), 51]
    assert (got[0]["body"], str(got[0]["amount"]), got[0]["urgent"]) == ("ticket 12", "15.00", True)
    assert (got[-1]["body"], got[-1]["amount"], got[-1]["urgent"]) == (None, None, None)
    assert cursors and cursors[0].name.startswith("pipespec_")  # server-side: fetchmany streams the result


def test_postgresql_query_error_is_the_databases_own(postgres):  # noqa: F811
    # The mapped task instance is labelled with the source name in the UI; the message is PostgreSQL's.
    with pytest.raises(Exception, match='relation "missing" does not exist'):
        run({"name": "tickets", "type": "sql", "conn_id": postgres.conn_id, "query": "select * from missing"})
