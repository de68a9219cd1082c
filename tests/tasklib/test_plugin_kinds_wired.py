"""Plugin alert channels and serving targets, end to end through the compiler, the rollout stages and
`pipespec check --plugins=declared` (needs the compiler, stages and CLI to take every plugin kind)."""

from __future__ import annotations

import json

import pytest

from pipespec.cli import main
from pipespec.compiler.compile import compile_checked
from pipespec.schemas import plugins
from pipespec.schemas.check import check_file

from tests.tasklib.test_plugin_kinds import SPEC, receiver, workspace, write  # noqa: F401 - fixtures


def test_a_plugin_alert_channel_reaches_the_ir_and_the_dag_docs(workspace):  # noqa: F811
    pipeline = compile_checked(check_file(write(workspace, SPEC)))
    dag = next(d for d in pipeline.dags if d.dag_id.endswith("__data"))
    (notify,) = [t for t in dag.tasks if t.step == "alert.notify"]
    assert notify.params["channels"] == [{"kind": "acme_pager", "service": "ml-data", "severity": "critical"}]
    assert "`acme_pager` (plugin)" in dag.doc_md and "acme_clip" in dag.doc_md


def test_declared_mode_lists_a_missing_plugin_source_as_a_warning(workspace, capsys, monkeypatch):  # noqa: F811
    policy = workspace / "policy.yaml"
    policy.write_text("plugins:\n  acme-streaming-plugins: [acme_kafka]\n")
    path = write(workspace, SPEC.replace("type: acme_http_jsonl", "type: acme_kafka"))
    try:
        code = main(["check", "--format", "json", "--policy", str(policy), "--plugins", "declared", str(path)])
    finally:
        plugins.set_mode(None)
        plugins.use_declarations(None)
        plugins.unverified.clear()
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    (warning,) = [d for d in out["diagnostics"] if d["code"] == "plugin-unchecked"]
    assert (warning["line"], warning["severity"]) == (6, "warning")
    assert "acme-streaming-plugins" in warning["message"]


@pytest.mark.airflow
def test_a_plugin_serving_target_is_called_by_the_rollout_stage(monkeypatch):
    from pydantic import BaseModel

    from pipespec.tasklib import steps
    from pipespec.tasklib.context import RunContext
    from pipespec.tasklib.rollout import stages

    class EdgeParams(BaseModel):
        fleet: str

    calls = []
    plugin = plugins.Plugin("serving_target", "edge_fleet", EdgeParams, "tests.support.unused:deploy")
    monkeypatch.setitem(plugins.registry().plugins, ("serving_target", "edge_fleet"),
                        plugins.Installed(plugin, "edge", "1.0"))
    original = steps.plugin_implementation
    monkeypatch.setattr(steps, "plugin_implementation", lambda kind, name: (
        (lambda d: calls.append(d) or {"fleet_rollout": "r-1"}) if name == "edge_fleet" else original(kind, name)))
    monkeypatch.setattr(stages, "enforce_target", lambda *args: None)
    monkeypatch.setattr(stages, "version_info", lambda pipeline, version: {"pipeline": pipeline, "version": version,
                                                                          "model_uri": f"models:/{pipeline}/{version}"})
    ctx = RunContext(dag_id="p__train", task_id="canary", run_id="r")
    result = stages._deploy(ctx, "canary", "p", {"type": "edge_fleet", "fleet": "kiosks"}, "3", percent=20)
    assert result == {"fleet_rollout": "r-1"}
    ((call,),) = [calls]
    assert (call.stage, call.params, call.percent, call.version["model_uri"]) == ("canary", {"fleet": "kiosks"}, 20,
                                                                                  "models:/p/3")
