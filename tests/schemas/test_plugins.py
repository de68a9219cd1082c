"""The plugin contract at check time: the installed example package (examples/acme-plugin, editable
in the test environment) is discovered through its entry point; its params are in the JSON Schema
and checked with positions; names that are not installed say what to install; `--plugins=declared`
lists what it could not check; `pipespec plugins` says where each plugin comes from. None of it
imports a plugin's step code, the task library or Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipespec.cli import main
from pipespec.schemas import plugins
from pipespec.schemas.check import check_file
from pipespec.schemas.jsonschema import build_schema
from tests.support.paths import ROOT

SPEC = """\
pipeline: uses_plugins
external_assets: [s3://bucket/curated/]
train:
  dataset: s3://bucket/curated/
  model:
    type: {model}
    features: [f0, f1]
    params: {params}
evaluate:
  metric: accuracy
"""


@pytest.fixture(autouse=True)
def fresh_mode():
    plugins.set_mode(None)
    plugins.use_declarations(None)
    yield
    plugins.set_mode(None)
    plugins.use_declarations(None)
    plugins.unverified.clear()


def write(tmp_path: Path, model: str, params: str = "{}", policy: str | None = None) -> tuple[Path, list[str]]:
    specs = tmp_path / "pipelines"
    specs.mkdir(exist_ok=True)
    spec = specs / "uses_plugins.yaml"
    spec.write_text(SPEC.format(model=model, params=params))
    args = [str(spec), "--format", "json"]
    if policy is not None:
        (tmp_path / "policy.yaml").write_text(textwrap.dedent(policy))
        args += ["--policy", str(tmp_path / "policy.yaml")]
    return spec, args


def check_json(args: list[str], capsys) -> tuple[int, list[dict]]:
    code = main(["check", *args])
    return code, json.loads(capsys.readouterr().out)["diagnostics"]


def test_the_example_package_is_discovered_with_its_distribution_and_version():
    found = plugins.lookup("model", "acme_gradient_boosting")
    assert found is not None and (found.distribution, found.version) == ("acme-pipespec-plugins", "0.1.0")
    assert found.plugin.task == "classification" and plugins.lookup("gate", "acme_min_holdout_rows")
    # The built-ins come through the same contract, from pipespec itself.
    assert plugins.lookup("model", "keras_text_classifier").distribution == "pipespec"
    assert plugins.registry().problems == []


def test_the_json_schema_lists_plugin_types_and_their_params_by_type():
    defs = build_schema()["$defs"]
    model = defs["Model"]
    assert {"acme_gradient_boosting", "container", "keras_text_classifier"} <= set(model["properties"]["type"]["enum"])
    branch = next(b for b in model["allOf"] if b["if"]["properties"]["type"]["const"] == "acme_gradient_boosting")
    params = defs[branch["then"]["properties"]["params"]["$ref"].removeprefix("#/$defs/")]
    assert params["additionalProperties"] is False
    assert params["properties"]["learning_rate"]["exclusiveMinimum"] == 0 and params["properties"]["max_depth"]["maximum"] == 32
    gate = next(b for b in defs["GateRef"]["allOf"] if b["if"]["properties"]["type"]["const"] == "acme_min_holdout_rows")
    assert defs[gate["then"]["properties"]["params"]["$ref"].removeprefix("#/$defs/")]["required"] == ["min_rows"]


def test_a_wrong_plugin_param_fails_at_its_line_with_a_hint(tmp_path):
    spec, _ = write(tmp_path, "acme_gradient_boosting", "\n      n_estimators: 10\n      max_detph: 3")
    found = check_file(spec).diagnostics
    assert [(d.line, d.col, d.message, d.hint) for d in found] == [
        (10, 7, "unknown key `max_detph`", "did you mean `max_depth`?")]


def test_a_name_the_policy_declares_but_is_not_installed_says_what_to_install(tmp_path, capsys):
    policy = "plugins: {acme-ml-extras: [acme_xgboost]}\n"
    _, args = write(tmp_path, "acme_xgboost", "{rounds: 3}", policy)
    code, found = check_json(args, capsys)
    assert code == 1 and len(found) == 1
    assert found[0]["message"] == ("model type `acme_xgboost` comes from the plugin package `acme-ml-extras`, "
                                   "which is not installed here")
    assert "pip install acme-ml-extras" in found[0]["hint"] and found[0]["line"] == 6


def test_declared_mode_lists_the_unchecked_name_as_a_warning_never_a_silent_pass(tmp_path, capsys):
    policy = "plugins: {acme-ml-extras: [acme_xgboost]}\n"
    _, args = write(tmp_path, "acme_xgboost", "{rounds: 3}", policy)
    code, found = check_json([*args, "--plugins=declared"], capsys)
    assert code == 0
    assert [(d["severity"], d["line"], d["code"]) for d in found] == [("warning", 6, "plugin-unchecked")]
    assert "`acme-ml-extras` is not installed" in found[0]["message"]


def test_declared_mode_still_refuses_names_nobody_declares(tmp_path, capsys):
    _, args = write(tmp_path, "acme_xgboost", "{}", "plugins: {acme-ml-extras: [other]}\n")
    code, found = check_json([*args, "--plugins=declared"], capsys)
    assert code == 1 and found[0]["message"] == "unknown model type `acme_xgboost`"


def test_pipespec_plugins_lists_name_kind_distribution_version(capsys):
    assert main(["plugins", "--format", "json"]) == 0
    rows = {(r["name"], r["kind"]): r for r in json.loads(capsys.readouterr().out)["plugins"]}
    assert rows["acme_gradient_boosting", "model"]["distribution"] == "acme-pipespec-plugins"
    assert rows["acme_min_holdout_rows", "gate"]["version"] == "0.1.0"
    assert rows["container", "model"]["distribution"] == "pipespec"
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION"]
    assert any(line.split()[:3] == ["acme_gradient_boosting", "model", "acme-pipespec-plugins"] for line in table)


def test_a_broken_plugin_list_is_reported_not_half_loaded():
    class Params(BaseModel):
        pass

    found = plugins.Registry()
    plugins._add(found, "bad:PLUGINS", lambda: [object()], "bad-dist", "1.0")
    plugins._add(found, "dup:PLUGINS", lambda: [plugins.Plugin("model", "x", Params, "m:a", task="regression"),
                                               plugins.Plugin("model", "x", Params, "m:b", task="regression")],
                 "dup-dist", "2.0")
    assert found.problems[0].startswith("bad-dist 1.0: cannot load `bad:PLUGINS`")
    assert "already registered by dup-dist" in found.problems[1] and list(found.plugins) == [("model", "x")]
    with pytest.raises(plugins.PluginError, match="lower_snake_case"):
        plugins.Plugin("model", "Bad-Name", Params, "m:a", task="regression")
    with pytest.raises(plugins.PluginError, match="module:attr"):
        plugins.Plugin("gate", "g", Params, "not a path")


def test_check_imports_no_plugin_step_code_tasklib_or_airflow():
    code = textwrap.dedent("""
        import sys
        from pipespec.cli import main
        rc = main(["check", "tests/cases/valid/plugin_acme_model.yaml"])
        heavy = [m for m in sys.modules if m.split(".")[0] in ("sklearn", "airflow", "mlflow", "tensorflow")
                 or m.startswith(("pipespec.tasklib", "acme_pipespec.gbm", "acme_pipespec.gates"))]
        print(heavy)
        sys.exit(rc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
