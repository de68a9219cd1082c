"""Sources, transforms, alert channels and serving targets from an installed plugin package
(examples/acme-plugin, installed in the test environment), under the same contract as the
built-ins: params in the JSON Schema and in check (with positions), names that are not installed,
a pipeline whose plugin source and transform run through the real data steps, and a pager channel
that receives exactly what pipespec sends, on a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from pipespec.compiler.compile import compile_checked
from pipespec.schemas import plugins
from pipespec.schemas.check import check_file
from pipespec.schemas.jsonschema import build_schema
from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.published import latest
from pipespec.tasklib.steps import resolve

SPEC = """\
pipeline: acme_events
owner: ml-team
data:
  sources:
    - name: events
      type: acme_http_jsonl
      conn_id: acme_events_api
      endpoint: /v1/export
      batch_rows: 2
      on_bad_rows: skip
  transforms:
    - acme_clip: {column: amount, min: 0, max: 100}
    - drop_empty: [text]
  threshold: {min_records: 1}
  publishes: s3://bucket/acme_events/
alerts:
  - on: [gate_blocked]
    acme_pager: {service: ml-data, severity: critical}
"""
# The compiler does not yet put a plugin's alert channel in the IR (compile._alerts, docs._channel).
DATA_ONLY = SPEC[:SPEC.index("alerts:")]
EXPORT = [{"text": "refund", "amount": 250}, {"text": "late", "amount": -3}, "not an object",
          {"text": "", "amount": 7}, {"text": "fine", "amount": 42.5}]


class Receiver(ThreadingHTTPServer):
    """A local API: GET /v1/export serves JSON Lines; every POST body is kept."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, dict]] = []
        self.export = b"".join((json.dumps(row) + "\n").encode() for row in EXPORT) + b"{broken\n"
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/v1/export":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(self.server.export)))
        self.end_headers()
        self.wfile.write(self.server.export)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch):
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    for conn_id in ("ACME_EVENTS_API", "ACME_PAGER"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
             "extra": {"Authorization": "Token pager-token"}}))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    (tmp_path / "pipelines").mkdir()
    return tmp_path


def write(folder: Path, text: str, name: str = "acme_events.yaml") -> Path:
    path = folder / "pipelines" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def errors(path: Path) -> list[tuple[int, int, str, str]]:
    checked = check_file(path)
    return [(d.line, d.col, d.message, d.hint) for d in checked.diagnostics if d.severity == "error"]


# --- schema and check --------------------------------------------------------------------------

def test_the_plugins_params_are_in_the_json_schema_by_type():
    defs = build_schema()["$defs"]
    source = defs["PluginSource"]
    assert source["properties"]["type"]["enum"] == ["acme_http_jsonl"]  # built-ins keep their own typed members
    (branch,) = source["allOf"]
    assert branch["if"] == {"properties": {"type": {"const": "acme_http_jsonl"}}, "required": ["type"]}
    assert branch["then"]["required"] == ["conn_id"]
    assert branch["then"]["properties"]["batch_rows"] == {
        "default": 10000, "description": "Rows per Arrow chunk (bounds memory).", "maximum": 1000000, "minimum": 1,
        "title": "Batch Rows", "type": "integer"}
    assert source["unevaluatedProperties"] is False  # an unknown key is flagged by editors too
    transform = defs["PluginTransform"]
    assert transform["propertyNames"] == {"enum": ["acme_clip"]}
    (clip,) = transform["allOf"]
    assert clip["if"] == {"required": ["acme_clip"]}
    assert clip["then"]["properties"]["acme_clip"]["required"] == ["column"]
    alert = defs["Alert"]
    assert "acme_pager" in alert["properties"]
    (pager,) = alert["allOf"]
    assert pager["then"]["properties"]["acme_pager"]["properties"]["severity"]["enum"] == ["info", "warning", "critical"]
    # every kind is in the one registry, pipespec's own and the package's alike
    for kind, name in (("source", "s3"), ("transform", "dedupe"), ("serving_target", "kubernetes"),
                       ("alert_channel", "slack"), ("source", "acme_http_jsonl"), ("alert_channel", "acme_pager")):
        assert plugins.lookup(kind, name) is not None, (kind, name)


def test_a_spec_using_the_plugins_checks_clean(workspace):
    assert errors(write(workspace, SPEC)) == []


_INSTALL = "needs its package installed (`pipespec plugins` lists what is)."


@pytest.mark.parametrize("old,new,expected", [
    ("      batch_rows: 2\n", "      batch_rowz: 2\n",
     (9, 19, "unknown key `batch_rowz` for source type `acme_http_jsonl`: did you mean `batch_rows`?", "")),
    ("      batch_rows: 2\n", "      batch_rows: 0\n",
     (9, 19, "must be greater than or equal to 1 (got `0`)", ("", "Rows per Arrow chunk (bounds memory)."))),
    ("      endpoint: /v1/export\n", "      endpoint: https://evil.example/x\n",
     (8, 17, "`https://evil.example/x` has the wrong format",
      ("String should match pattern '^(/[A-Za-z0-9._~\\-]+)*/?$'", "Path on the connection's host."))),
    ("      conn_id: acme_events_api\n", "",
     (5, 7, "missing required key `conn_id` of source type `acme_http_jsonl`: Airflow HTTP connection of the API "
            "(its host, auth and headers).", "")),
    ("max: 100}", 'max: "100"}', (12, 48, "expected a number, got `100` (a string)", ("", "Values above become this."))),
    ("min: 0, max: 100}", "min: 7, max: 1}", (12, 18, "acme_clip: min 7.0 is above max 1.0", "")),
    ("severity: critical}", "severity: critcal}", (18, 46, "`critcal` is not allowed here", "did you mean `critical`?")),
    ("acme_pager: {", "acme_pagr: {", (18, 16, "unknown alert channel `acme_pagr`",
                                       f"did you mean `acme_pager`? A plugin's alert channel {_INSTALL}")),
    ("- acme_clip:", "- acme_clp:", (12, 7, "unknown transform `acme_clp`",
                                     f"did you mean `acme_clip`? A plugin's transform {_INSTALL}")),
])
def test_a_wrong_plugin_param_fails_check_at_its_line(workspace, old, new, expected):
    assert old in SPEC
    ((line, col, message, hint),) = errors(write(workspace, SPEC.replace(old, new)))
    *place, hints = expected
    assert (line, col, message) == tuple(place)
    # A tuple: the hint check gives now, or the plugin field's own description once
    # schemas/validation_errors.py asks plugins.params_at (requested change).
    assert hint in hints if isinstance(hints, tuple) else hint == hints


def test_an_uninstalled_plugin_source_says_what_to_install_and_declared_mode_lists_it(workspace):
    path = write(workspace, SPEC.replace("type: acme_http_jsonl", "type: acme_kafka"))
    plugins.use_declarations({"acme_kafka": "acme-streaming-plugins"})
    try:
        ((line, col, message, hint),) = errors(path)
        assert (line, col) == (6, 13)
        assert message == ("source type `acme_kafka` comes from the plugin package `acme-streaming-plugins`, "
                           "which is not installed here")
        assert "pip install acme-streaming-plugins" in hint and "--plugins=declared" in hint
        plugins.set_mode("declared")
        assert errors(path) == []  # accepted unchecked (the CLI lists it as a warning)
        assert plugins.is_unverified("source", "acme_kafka")
    finally:
        plugins.set_mode(None)
        plugins.use_declarations(None)
        plugins.unverified.clear()
    assert errors(path)[0][2] == "unknown source type `acme_kafka`"  # nobody declares it: an error in every mode


# --- the real data steps ------------------------------------------------------------------------

def run_data_dag(path: Path, run_id: str = "manual__1") -> dict[str, dict]:
    """The compiled data DAG's steps, in order, in this process: what Airflow's tasks would call."""
    checked = check_file(path)
    assert checked.ok, checked.diagnostics
    dag = next(d for d in compile_checked(checked).dags if d.dag_id.endswith("__data"))
    outputs: dict[str, dict] = {}
    for task in dag.tasks:
        if task.step not in ("data.extract", "data.join", "data.measure", "data.curate", "data.gate",
                             "data.publish"):
            continue
        ctx = RunContext(dag_id=dag.dag_id, task_id=task.task_id, run_id=run_id)
        inputs = {arg: outputs[upstream] for arg, upstream in task.inputs.items()}
        step = resolve(task.step)
        if task.mapping is not None:  # one instance per source; downstream gets the list
            outputs[task.task_id] = [step(ctx, **task.params, **inputs, **{task.mapping.arg: item})
                                     for item in task.mapping.items]
        elif task.step == "data.publish" and decision(outputs) != "pass":
            continue
        else:
            outputs[task.task_id] = step(ctx, **task.params, **inputs)
    return outputs


def decision(outputs: dict[str, dict]) -> str:
    """The data gate's decision: `measure` branches on it (an older compiler had a `gate` task)."""
    return (outputs.get("gate") or outputs["measure"])["decision"]


@pytest.mark.airflow  # the source reads through the http provider's hook
def test_a_pipeline_with_the_plugin_source_and_transform_runs_the_data_steps_and_publishes(workspace, receiver):
    out = run_data_dag(write(workspace, DATA_ONLY))
    (extracted,) = out["extract"]
    # line 3 is not an object, line 6 not JSON: both counted (on_bad_rows: skip), never silently lost
    assert (extracted["source"], extracted["bad_rows"]) == ("events", 2)
    assert storage.read_table(extracted).to_pylist() == [
        {"text": "refund", "amount": 100.0}, {"text": "late", "amount": 0.0}, {"text": "fine", "amount": 42.5}]
    assert decision(out) == "pass"
    published = latest("s3://bucket/acme_events/")
    assert published is not None and published.manifest["sources"]["events"]["rows"] == 3
    assert storage.read_table(published.data).column("amount").to_pylist() == [100.0, 0.0, 42.5]


@pytest.mark.airflow
def test_a_bad_row_from_a_plugin_source_stops_the_extract_with_its_line(workspace, receiver):
    path = write(workspace, DATA_ONLY.replace("      on_bad_rows: skip\n", ""))
    with pytest.raises(ValueError, match=r"^connection `acme_events_api` /v1/export:3: expected a JSON object, "
                                         r"got str \(set on_bad_rows: skip to drop such rows\)"):
        run_data_dag(path)


def test_a_plugin_transform_that_changes_its_columns_per_batch_is_an_error(monkeypatch):
    from pipespec.tasklib.data import transform as module

    def unstable(table, params, source):
        return table if table.num_rows == 0 else table.append_column("extra", pa.array([1] * table.num_rows))

    from pipespec.tasklib import steps

    original = steps.plugin_implementation
    monkeypatch.setattr(steps, "plugin_implementation",
                        lambda kind, name: unstable if name == "acme_clip" else original(kind, name))
    rows = module.Rows(pa.schema([("amount", pa.float64())]), iter(pa.table({"amount": [1.0]}).to_batches()))
    out = module.apply(rows, [{"acme_clip": {"column": "amount", "max": 5}}], "events", None)
    with pytest.raises(ValueError, match=r"transform `acme_clip` returned columns \['amount', 'extra'\]"):
        list(out.batches)


# --- alert channel and serving target -------------------------------------------------------------

@pytest.mark.airflow  # the pager posts through the http provider's hook
def test_the_pager_channel_gets_exactly_the_event_for_pipespecs_message(workspace, receiver):
    from pipespec.schemas.models.operations import Alert
    from pipespec.tasklib.alerts import send

    alert = Alert.model_validate({"on": ["gate_blocked"], "acme_pager": {"service": "ml-data", "severity": "critical"}})
    name, settings = alert.channel()
    reached = send([{"kind": name, **settings}], pipeline="acme_events", event="gate_blocked",
                   dag_id="acme_events__data", run_id="manual__1", details={"rows": 3, "reason": "too few rows"})
    assert reached == ["acme_pager"]
    ((path, headers, body),) = receiver.posts
    assert path == "/v1/events" and headers["Authorization"] == "Token pager-token"  # from the connection
    assert body == {
        "service": "ml-data", "severity": "critical",
        "summary": "[pipespec] acme_events: gate blocked in acme_events__data (run manual__1): rows=3, reason=too few rows",
        "link": "http://airflow.example:8080/dags/acme_events__data/runs/manual__1",
        "dedup_key": "acme_events__data/manual__1/gate_blocked",
        "custom_details": {"pipeline": "acme_events", "event": "gate_blocked", "rows": 3, "reason": "too few rows"}}


def test_a_plugin_alert_channel_with_bad_settings_in_the_ir_is_not_reached(workspace, receiver):
    from pipespec.tasklib.alerts import send

    with pytest.raises(RuntimeError, match=r"acme_pager: alert channel `acme_pager`: invalid params"):
        send([{"kind": "acme_pager", "service": "Not Valid"}], pipeline="p", event="failure", dag_id="p__data",
             run_id="r", details={})
    assert receiver.posts == []


def test_a_serving_target_plugin_is_called_with_the_stage_params_and_version(monkeypatch):
    from pydantic import BaseModel, ConfigDict

    from pipespec.schemas.models.rollout import RolloutSection
    from pipespec.tasklib.rollout import targets

    class EdgeParams(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        fleet: str
        regions: list[str] = ["eu"]

    calls: list[targets.Deployment] = []
    plugin = plugins.Plugin("serving_target", "edge_fleet", EdgeParams, "tests.support.unused:deploy")
    registry = plugins.registry()
    monkeypatch.setitem(registry.plugins, ("serving_target", "edge_fleet"), plugins.Installed(plugin, "edge", "1.0"))
    from pipespec.tasklib import steps

    original = steps.plugin_implementation
    monkeypatch.setattr(steps, "plugin_implementation", lambda kind, name: (
        (lambda d: calls.append(d) or {"fleet_rollout": "r-1"}) if name == "edge_fleet" else original(kind, name)))

    rollout = RolloutSection.model_validate({"target": {"type": "edge_fleet", "fleet": "kiosks"}})
    target = rollout.target.model_dump()
    assert target == {"type": "edge_fleet", "fleet": "kiosks"}  # the IR carries what the author wrote
    version = {"pipeline": "p", "version": "7", "model_uri": "models:/p/7"}
    assert targets.deploy(None, "canary", target, version, percent=10) == {"fleet_rollout": "r-1"}
    assert targets.deploy(None, "shadow", target, version) == {"fleet_rollout": "r-1"}
    assert [(c.stage, c.params, c.version, c.percent) for c in calls] == [
        ("canary", {"fleet": "kiosks", "regions": ["eu"]}, version, 10),
        ("shadow", {"fleet": "kiosks", "regions": ["eu"]}, version, 0)]
    with pytest.raises(Exception, match="unknown key `fleat` for serving target `edge_fleet`: did you mean `fleet`"):
        RolloutSection.model_validate({"target": {"type": "edge_fleet", "fleat": "kiosks"}})
    assert targets.deploy(None, "full", {"type": "registry_alias", "alias": "champion"}, version) == {}
