"""`pipespec check`, `pipespec new` and the repository-wide rules, through `pipespec.cli.main`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipespec.cli import main
from pipespec.schemas.reporters import text as text_report
from tests.support.files import write

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
PIPELINES = ROOT / "pipelines"
CASES = ROOT / "tests" / "cases"

SOURCE = "    - {name: raw, type: local, path: data/raw/, format: csv}\n"


def spec(name: str, body: str = "", publishes: str | None = None) -> str:
    """A small valid spec; `body` adds or overrides sections."""
    data = "" if "data:" in body else f"data:\n  sources:\n{SOURCE}  publishes: {publishes or f's3://bucket/{name}/'}\n"
    return f"pipeline: {name}\n{data}{body}"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code, out, err = run(capsys, "check", "--format", "json", *argv)
    return code, json.loads(out)


# --- exit codes ------------------------------------------------------------------------------------

def test_example_pipelines_pass(capsys):
    code, out, err = run(capsys, "check", str(PIPELINES))
    assert code == 0, out
    count = len(list(PIPELINES.rglob("*.yaml")))
    assert out.strip() == f"{count} file(s) checked: all good"
    assert err == ""


def test_default_path_is_pipelines(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert f"{len(list(PIPELINES.rglob('*.yaml')))} file(s) checked: all good" in out


def test_errors_exit_1(capsys):
    case = CASES / "invalid" / "unknown_key_top.yaml"
    code, out, _ = run(capsys, "check", str(case))
    assert code == 1
    assert "unknown key `descripton`" in out
    assert out.rstrip().endswith("1 file(s) checked: 1 error(s) in 1 file(s)")


def test_nonexistent_path_is_a_usage_error(capsys, tmp_path):
    missing = tmp_path / "nope"
    code, out, err = run(capsys, "check", str(PIPELINES), str(missing))
    assert code == 2
    assert out == ""
    assert f"{missing}:1:1: error: no such file or directory" in err


@pytest.mark.parametrize("argv", [
    ["check", "--frmat", "json"],
    ["check", "--format", "xml"],
    ["bogus"],
    [],
    ["new", "x"],  # --from is required
])
def test_bad_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: pipespec" in capsys.readouterr().err


def test_directory_walk_skips_hidden_and_non_yaml(capsys, tmp_path):
    write(tmp_path, {
        "good.yaml": spec("good"),
        "also.yml": spec("also"),
        "notes.txt": "not: [a spec",
        ".hidden/broken.yaml": "pipeline: [",
        "nested/deeper.yaml": spec("deeper"),
    })
    code, out, _ = run(capsys, "check", str(tmp_path))
    assert code == 0, out
    assert "3 file(s) checked: all good" in out


# --- formats ---------------------------------------------------------------------------------------

BROKEN = """\
pipeline: broken
data:
  sources:
    - {name: raw, type: lokal, path: data/raw/, format: csv}
  publishes: s3://bucket/broken/
retries:
  delay: 5 minutes
"""


@pytest.fixture
def broken(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"specs/broken_spec.yaml": BROKEN})
    return Path("specs/broken_spec.yaml")


def test_text_shows_source_line_and_caret(capsys, broken):
    code, out, _ = run(capsys, "check", str(broken))
    assert code == 1
    lines = out.splitlines()
    header = lines.index("specs/broken_spec.yaml:4:25: error: unknown source type `lokal` (data.sources[0].type)")
    assert lines[header + 1] == "    4 |     - {name: raw, type: lokal, path: data/raw/, format: csv}"
    caret = lines[header + 2]
    assert caret.strip() == "^"
    source = lines[header + 1]
    assert source[caret.index("^"):].startswith("lokal")
    assert lines[header + 3] == "      hint: did you mean `local`?"

    header = lines.index("specs/broken_spec.yaml:7:10: error: `5 minutes` has the wrong format (retries.delay)")
    assert lines[header + 1] == "    7 |   delay: 5 minutes"
    assert lines[header + 1][lines[header + 2].index("^"):].startswith("5 minutes")
    assert lines[-1] == "1 file(s) checked: 2 error(s) in 1 file(s)"


def test_text_caret_counts_characters_not_bytes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"unicode_caret.yaml": "pipeline: caf\u00e9_\u2603\ndata:\n  sources: []\n  publishes: s3://a/\n"})
    code, out, _ = run(capsys, "check", "unicode_caret.yaml")
    assert code == 1
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "has the wrong format (pipeline)" in line)
    assert lines[header].startswith("unicode_caret.yaml:1:11:")
    assert lines[header + 1][lines[header + 2].index("^"):].startswith("caf\u00e9")


def test_json_format(capsys, broken):
    code, data = run_json(capsys, str(broken))
    assert code == 1
    assert data["checked_files"] == 1
    assert data["errors"] == 2
    first, second = data["diagnostics"]
    assert set(first) >= {"file", "line", "col", "path", "message", "hint", "code", "severity"}
    assert first == {
        "file": "specs/broken_spec.yaml", "line": 4, "col": 25, "path": "data.sources[0].type",
        "message": "unknown source type `lokal`", "hint": "did you mean `local`?", "code": "unknown-plugin",
        "severity": "error"}
    assert (second["line"], second["col"], second["path"]) == (7, 10, "retries.delay")
    assert second["code"] == "format"


def test_json_format_when_all_good(capsys):
    code, data = run_json(capsys, str(PIPELINES))
    assert code == 0
    assert data == {"checked_files": len(list(PIPELINES.rglob("*.yaml"))), "errors": 0, "diagnostics": []}


def test_github_format(capsys, broken):
    code, out, _ = run(capsys, "check", "--format", "github", str(broken))
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2
    pattern = re.compile(r"^::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+)(?:,title=[^:]*)?::(?P<msg>.+)$")
    first = pattern.match(lines[0])
    assert first, lines[0]
    assert (first["file"], first["line"], first["col"]) == ("specs/broken_spec.yaml", "4", "25")
    assert first["msg"] == "unknown source type `lokal` (hint: did you mean `local`?)"
    assert lines[0].startswith("::error file=specs/broken_spec.yaml,line=4,col=25,")
    second = pattern.match(lines[1])
    assert second and (second["line"], second["col"]) == ("7", "10")


def test_github_format_escapes_properties(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"a,b:c.yaml": "pipeline: x\nbogus: 1\n"})
    code, out, _ = run(capsys, "check", "--format", "github", "a,b:c.yaml")
    assert code == 1
    assert out.startswith("::error file=a%2Cb%3Ac.yaml,line=2,col=1,")


def test_usage_error_in_json_format_goes_to_stderr(capsys, tmp_path):
    code, out, err = run(capsys, "check", "--format", "json", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert out == ""
    assert json.loads(err)["diagnostics"][0]["code"] == "usage"


def test_secret_line_is_not_echoed(capsys, tmp_path):
    write(tmp_path, {"leaky.yaml": spec("leaky", 'description: "deploy key AKIAIOSFODNN7EXAMPLE"\n')})
    for fmt in ("text", "json", "github"):
        code, out, _ = run(capsys, "check", "--format", fmt, str(tmp_path / "leaky.yaml"))
        assert code == 1
        assert "AKIAIOSFODNN7EXAMPLE" not in out
        assert "AWS access key id" in out


def test_a_broken_template_is_reported_once(capsys, tmp_path):
    write(tmp_path, {
        "templates/shared.yaml": "retries:\n  delay: 2 minutes\n",
        "one.yaml": spec("one", "extends: templates/shared.yaml\n"),
        "two.yaml": spec("two", "extends: templates/shared.yaml\n"),
    })
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    assert data["checked_files"] == 3
    assert [(Path(d["file"]).name, d["line"], d["col"]) for d in data["diagnostics"]] == [("shared.yaml", 2, 10)]


def test_report_shows_the_current_source_line(tmp_path):
    """The reporter must not show a line from an earlier version of the file."""
    from pipespec.schemas.check import check_file

    path = tmp_path / "edited.yaml"
    path.write_text("pipeline: x\nbogus: 1\n")
    first = text_report(check_file(path).diagnostics, 1)
    assert "    2 | bogus: 1" in first
    path.write_text("pipeline: x\nbogus: 2\n")
    second = text_report(check_file(path).diagnostics, 1)
    assert "    2 | bogus: 2" in second


# --- repository rules ------------------------------------------------------------------------------

def test_duplicate_pipeline_names(capsys, tmp_path):
    write(tmp_path, {
        "a.yaml": spec("same_name", publishes="s3://bucket/a/"),
        "b.yaml": "# second\n" + spec("same_name", publishes="s3://bucket/b/"),
    })
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    [d] = data["diagnostics"]
    assert Path(d["file"]).name == "b.yaml"
    assert (d["line"], d["col"], d["path"]) == (2, 11, "pipeline")
    assert d["message"].startswith("pipeline name `same_name` is already used by ")
    assert d["message"].endswith("a.yaml")
    assert d["code"] == "repo"


def test_unproduced_asset(capsys, tmp_path):
    body = "train:\n  schedule:\n    assets: [s3://nowhere/features/]\n  model: {type: keras_text_classifier}\n"
    write(tmp_path, {"consumer.yaml": spec("consumer", body)})
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    [d] = data["diagnostics"]
    assert d["message"] == "no pipeline produces the Asset `s3://nowhere/features/`"
    assert (d["line"], d["col"], d["path"]) == (7, 3, "train.schedule")
    assert "external_assets" in d["hint"]


def test_external_assets_silence_the_unproduced_asset(capsys, tmp_path):
    body = ("external_assets: [s3://nowhere/features/]\n"
            "train:\n  schedule:\n    assets: [s3://nowhere/features/]\n  model: {type: keras_text_classifier}\n")
    write(tmp_path, {"consumer.yaml": spec("consumer", body)})
    code, data = run_json(capsys, str(tmp_path))
    assert code == 0, data
    assert data["diagnostics"] == []


def test_asset_produced_by_another_pipeline(capsys, tmp_path):
    write(tmp_path, {
        "producer.yaml": spec("producer", publishes="s3://shared/curated/"),
        "consumer.yaml": spec("consumer", "train:\n  dataset: s3://shared/curated/\n"
                                          "  model: {type: keras_text_classifier}\n", publishes="s3://c/"),
    })
    code, data = run_json(capsys, str(tmp_path))
    assert code == 0, data


def test_pipelines_triggering_each_other(capsys, tmp_path):
    def looping(name: str, other: str) -> str:
        return (f"pipeline: {name}\ndata:\n  schedule:\n    assets: s3://{other}/out/\n"
                f"  sources:\n{SOURCE}  publishes: s3://{name}/out/\n")

    write(tmp_path, {"ping.yaml": looping("ping", "pong"), "pong.yaml": looping("pong", "ping")})
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    cycles = [d for d in data["diagnostics"] if "cycle" in d["message"]]
    assert len(cycles) == 1, data
    [d] = cycles
    assert d["message"] in ("pipelines trigger each other in a cycle: ping → pong → ping",
                            "pipelines trigger each other in a cycle: pong → ping → pong")
    assert d["path"] == "data.schedule"
    assert d["line"] == 3
    assert "cron" in d["hint"]
    assert len(data["diagnostics"]) == 1


def test_three_pipeline_cycle(capsys, tmp_path):
    def consumer(name: str, upstream: str) -> str:
        return (f"pipeline: {name}\ndata:\n  schedule: {{assets: s3://{upstream}/out/}}\n"
                f"  sources:\n{SOURCE}  publishes: s3://{name}/out/\n")

    write(tmp_path, {"a.yaml": consumer("a", "c"), "b.yaml": consumer("b", "a"), "c.yaml": consumer("c", "b")})
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    [d] = data["diagnostics"]
    assert d["message"] == "pipelines trigger each other in a cycle: a → b → c → a"


def test_chain_without_cycle_is_fine(capsys, tmp_path):
    write(tmp_path, {
        "up.yaml": spec("up", publishes="s3://up/out/"),
        "down.yaml": ("pipeline: down\ndata:\n  schedule: {assets: s3://up/out/}\n"
                      f"  sources:\n{SOURCE}  publishes: s3://down/out/\n"),
    })
    code, data = run_json(capsys, str(tmp_path))
    assert code == 0, data


def test_repo_rules_ignore_specs_that_failed(capsys, tmp_path):
    write(tmp_path, {"a.yaml": spec("same"), "b.yaml": spec("same", "bogus: 1\n")})
    code, data = run_json(capsys, str(tmp_path))
    assert code == 1
    assert [d["message"] for d in data["diagnostics"]] == ["unknown key `bogus`"]


# --- pipespec new ----------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    target = tmp_path / "pipelines"
    shutil.copytree(PIPELINES, target)
    return target


def test_new_writes_a_spec_that_passes_check(capsys, project):
    code, out, err = run(capsys, "new", "my_intents", "--from", "templates/text_classifier.yaml",
                         "--dir", str(project))
    assert code == 0, err
    created = project / "my_intents.yaml"
    assert created.is_file()
    assert f"wrote {created}" in out
    content = created.read_text()
    assert content.startswith("# yaml-language-server: $schema=../schemas/pipeline.schema.json\n")
    assert "pipeline: my_intents\n" in content
    assert "extends: templates/text_classifier.yaml\n" in content
    code, out, _ = run(capsys, "check", str(created))
    assert code == 0, out


def test_new_spec_inherits_from_its_template(capsys, project):
    code, _, _ = run(capsys, "new", "my_intents", "--from", "templates/text_classifier.yaml", "--dir", str(project))
    assert code == 0
    from pipespec.schemas.check import check_file

    result = check_file(project / "my_intents.yaml")
    assert result.spec is not None, result.diagnostics
    assert result.spec.pipeline == "my_intents"
    assert result.spec.train is not None and result.spec.train.model.type == "keras_text_classifier"
    assert result.spec.tags == ["pipespec", "nlp"]
    assert [p.name for p in result.files] == ["my_intents.yaml", "text_classifier.yaml", "base.yaml"]


@pytest.mark.parametrize("template", sorted(p.name for p in (PIPELINES / "templates").glob("*.yaml")))
def test_new_from_every_shipped_template_passes_check(capsys, project, template):
    code, _, err = run(capsys, "new", "fresh_spec", "--from", f"templates/{template}", "--dir", str(project))
    assert code == 0, err
    code, out, _ = run(capsys, "check", str(project))
    assert code == 0, out


@pytest.mark.parametrize("name", ["My-Pipeline", "1st", "has space", "", "x" * 64, "../escape"])
def test_new_rejects_bad_names(capsys, project, name):
    before = sorted(p.name for p in project.iterdir())
    code, out, err = run(capsys, "new", name, "--from", "templates/base.yaml", "--dir", str(project))
    assert code == 2
    assert "is not a valid pipeline name" in err
    assert sorted(p.name for p in project.iterdir()) == before


@pytest.mark.parametrize("template", ["templates/nope.yaml", "../pyproject.toml", "churn.yaml",
                                      "templates/../churn.yaml"])
def test_new_rejects_missing_or_outside_templates(capsys, project, template):
    code, out, err = run(capsys, "new", "fresh", "--from", template, "--dir", str(project))
    assert code == 2
    assert f"no template `{template}`" in err
    assert "templates/base.yaml" in err  # lists what is available
    assert not (project / "fresh.yaml").exists()


def test_new_refuses_to_overwrite(capsys, project):
    before = (project / "churn.yaml").read_text()
    code, out, err = run(capsys, "new", "churn", "--from", "templates/tabular.yaml", "--dir", str(project))
    assert code == 2
    assert "already exists" in err
    assert (project / "churn.yaml").read_text() == before
