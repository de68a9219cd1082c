"""Issue 10, items 3, 7 and 8: what a spec tree or a cache directory can make the parser read or do.

- symlinks never take discovery or `extends` outside the spec tree, and the refusal quotes nothing
  from the target (the loader shows diagnostics in DAG docs);
- `extends` fan-out is resolved once per template, within caps on depth and parents;
- an IR cache entry is keyed by the spec's own digest and validated: a forged or corrupt entry is a
  cache miss that recompiles, never a crash and never another spec's pipeline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import pipespec.compiler.build as build
import pipespec.schemas.check as check
from pipespec.schemas import reporters as report, templates
from pipespec.schemas.check import check_file
from pipespec.schemas.discover import discover

SECRET = "hunter2-admin-password"
SPEC_BODY = ("inference: null\ndata:\n  sources: [{name: a, type: local, path: a.csv, format: csv}]\n"
             "  publishes: s3://{name}-bucket/x/\n")


def spec(name: str, extends: str = "") -> str:
    return f"pipeline: {name}\n{extends}" + SPEC_BODY.replace("{name}", name)


def everything_said(diagnostics) -> str:
    """Every reporter's output, with source excerpts: nothing of a symlink's target may appear."""
    return "\n".join(reporter(diagnostics, 1) for reporter in report.REPORTERS.values())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the spec tree holding a 'password file' (valid YAML, and also a template)."""
    directory = tmp_path / "outside"
    directory.mkdir()
    # Not a mapping (so the loader's error sits on line 1, the line a report would quote), and not in
    # `key: value` form (which the secret detector would redact on its own).
    (directory / "password.yaml").write_text(f"admin_password = {SECRET}\n")
    (directory / "secret_listing.yaml").write_text("owner: x\n")
    return directory


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    directory = tmp_path / "pipelines"
    directory.mkdir()
    return directory


# --- item 3: symlinks -----------------------------------------------------------------------------

def test_a_spec_symlinked_outside_the_tree_is_refused_without_quoting_it(pipelines, outside, tmp_path):
    (pipelines / "good.yaml").write_text(spec("good"))
    (pipelines / "leak.yaml").symlink_to(outside / "password.yaml")
    result = build.build_repo(pipelines, tmp_path / "cache")
    assert [p.name for p in result.pipelines] == ["good"]
    [broken] = result.broken
    [diagnostic] = broken.diagnostics
    assert Path(broken.file).name == "leak.yaml" and diagnostic.code == "symlink"
    assert "symlink" in diagnostic.message and "outside" in diagnostic.message
    said = everything_said(broken.diagnostics)
    assert SECRET not in said and "admin_password" not in said and str(outside) not in said


def test_a_spec_named_on_the_command_line_is_held_to_its_directory(pipelines, outside):
    (pipelines / "leak.yaml").symlink_to(outside / "password.yaml")
    files, problems = discover([pipelines / "leak.yaml"])
    assert files == [] and [d.code for d in problems] == ["symlink"]
    assert SECRET not in everything_said(problems)


def test_a_symlinked_templates_directory_outside_the_tree_is_refused(pipelines, outside):
    (pipelines / "templates").symlink_to(outside, target_is_directory=True)
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/password.yaml\n"))
    result = check_file(pipelines / "p.yaml")
    [diagnostic] = result.diagnostics
    assert diagnostic.code == "extends" and "symlink" in diagnostic.message
    assert (Path(diagnostic.file).name, diagnostic.line) == ("p.yaml", 2)  # points at the `extends` line
    said = everything_said(result.diagnostics)
    # Neither the file's content nor the names of the files next to it (the "available:" hint).
    assert SECRET not in said and "admin_password" not in said and "secret_listing" not in said
    assert [f.name for f in result.files] == []


def test_a_missing_template_in_a_symlinked_directory_lists_nothing_from_it(pipelines, outside):
    (pipelines / "templates").symlink_to(outside, target_is_directory=True)
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/nope.yaml\n"))
    said = everything_said(check_file(pipelines / "p.yaml").diagnostics)
    assert "secret_listing" not in said and "password" not in said


def test_a_template_file_symlinked_outside_the_tree_is_refused(pipelines, outside):
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").symlink_to(outside / "password.yaml")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\n"))
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert diagnostic.code == "extends" and "symlink" in diagnostic.message
    assert SECRET not in everything_said([diagnostic])


def test_a_template_extending_a_symlink_out_is_refused_too(pipelines, outside):
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").write_text("extends: inner.yaml\nowner: a\n")
    (pipelines / "templates" / "inner.yaml").symlink_to(outside / "password.yaml")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\n"))
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert Path(diagnostic.file).name == "base.yaml" and "symlink" in diagnostic.message
    assert SECRET not in everything_said([diagnostic])


def test_symlinks_that_stay_inside_the_tree_are_fine(tmp_path, pipelines):
    (pipelines / "shared").mkdir()
    (pipelines / "shared" / "base.yaml").write_text("owner: team-shared\n")
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").symlink_to(Path("..") / "shared" / "base.yaml")
    (pipelines / "team").mkdir()
    (pipelines / "team" / "real.yaml").write_text(spec("p", "extends: ../templates/base.yaml\n"))
    (pipelines / "current.yaml").symlink_to(Path("team") / "real.yaml")
    files, problems = discover([pipelines])
    assert problems == [] and pipelines / "current.yaml" in files
    result = check_file(pipelines / "current.yaml")
    assert result.diagnostics == [] and result.spec is not None and result.spec.owner == "team-shared"


def test_a_symlinked_spec_root_is_fine(tmp_path, pipelines):
    """git-sync and many deployments point the DAGs folder at the checkout through a symlink."""
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").write_text("owner: team-a\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\n"))
    link = tmp_path / "current"
    link.symlink_to(pipelines, target_is_directory=True)
    result = build.build_repo(link, tmp_path / "cache")
    assert result.broken == [] and result.pipelines[0].dags[0].owner == "team-a"


def test_a_symlinked_directory_out_of_the_tree_is_not_walked(pipelines, outside):
    (pipelines / "team").symlink_to(outside, target_is_directory=True)
    files, problems = discover([pipelines])
    assert files == [] and problems == []


# --- item 7: extends fan-out ----------------------------------------------------------------------

def _count_template_loads(monkeypatch) -> list[Path]:
    """Every template `extends` reads for a spec, once per time it is resolved."""
    loads: list[Path] = []
    real = templates._load_template
    monkeypatch.setattr(templates, "_load_template", lambda path, display: loads.append(path) or real(path, display))
    return loads


@pytest.mark.timeout(20)
def test_the_issue_fan_out_repro_fails_fast_on_the_duplicate(pipelines, monkeypatch):
    """Five templates, each extending the next 25 times: 25**5 resolutions before the fix (24 s)."""
    (pipelines / "templates").mkdir()
    for level in range(1, 6):
        parents = f"extends: [{', '.join([f't{level + 1}.yaml'] * 25)}]\n" if level < 5 else ""
        (pipelines / "templates" / f"t{level}.yaml").write_text(f"{parents}owner: level{level}\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/t1.yaml\n"))
    loads = _count_template_loads(monkeypatch)
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert diagnostic.code == "extends" and "more than once" in diagnostic.message
    assert (Path(diagnostic.file).name, diagnostic.line, diagnostic.col) == ("t1.yaml", 1, 20)
    assert [p.name for p in loads] == ["t1.yaml"]  # refused before the repeated parent is read


@pytest.mark.timeout(20)
def test_distinct_fan_out_is_resolved_once_per_template(pipelines, monkeypatch):
    """Every template of a level extends every template of the next: a diamond lattice.
    Unmemoised, a template is resolved once per path to it (5460 resolutions here); memoised, once."""
    width, depth = 4, 6
    (pipelines / "templates").mkdir()
    for level in range(depth):
        for i in range(width):
            parents = ", ".join(f"l{level + 1}_{j}.yaml" for j in range(width))
            head = f"extends: [{parents}]\n" if level < depth - 1 else ""
            (pipelines / "templates" / f"l{level}_{i}.yaml").write_text(f"{head}owner: l{level}-{i}\n")
    roots = ", ".join(f"templates/l0_{i}.yaml" for i in range(width))
    (pipelines / "p.yaml").write_text(spec("p", f"extends: [{roots}]\n"))
    loads = _count_template_loads(monkeypatch)
    result = check_file(pipelines / "p.yaml")
    assert result.diagnostics == [] and result.spec is not None and result.spec.owner == f"l0-{width - 1}"
    assert len(loads) == len(set(loads)) == width * depth
    assert len(result.files) == len(set(result.files)) == width * depth + 1  # each file once


def test_extends_depth_is_capped(pipelines):
    (pipelines / "templates").mkdir()
    count = templates.MAX_DEPTH + 2
    for level in range(count):
        head = f"extends: c{level + 1}.yaml\n" if level < count - 1 else ""
        (pipelines / "templates" / f"c{level}.yaml").write_text(f"{head}owner: c{level}\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/c0.yaml\n"))
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert diagnostic.code == "extends" and "too deep" in diagnostic.message
    assert str(templates.MAX_DEPTH) in diagnostic.message


def test_a_chain_at_the_depth_limit_is_fine(pipelines):
    (pipelines / "templates").mkdir()
    count = templates.MAX_DEPTH
    for level in range(count):
        head = f"extends: c{level + 1}.yaml\n" if level < count - 1 else ""
        (pipelines / "templates" / f"c{level}.yaml").write_text(f"{head}owner: c{level}\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/c0.yaml\n"))
    result = check_file(pipelines / "p.yaml")
    assert result.diagnostics == [] and result.spec is not None and result.spec.owner == "c0"


def test_the_number_of_parents_is_capped(pipelines):
    (pipelines / "templates").mkdir()
    count = templates.MAX_PARENTS + 1
    for i in range(count):
        (pipelines / "templates" / f"p{i}.yaml").write_text(f"owner: p{i}\n")
    parents = ", ".join(f"templates/p{i}.yaml" for i in range(count))
    (pipelines / "p.yaml").write_text(spec("p", f"extends: [{parents}]\n"))
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert diagnostic.code == "extends" and f"at most {templates.MAX_PARENTS}" in diagnostic.message
    assert (diagnostic.line, diagnostic.col) == (2, 10)


def test_the_same_template_by_two_spellings_is_a_duplicate(pipelines):
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").write_text("owner: a\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: [templates/base.yaml, ./templates/base.yaml]\n"))
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert "more than once" in diagnostic.message and (diagnostic.line, diagnostic.col) == (2, 32)


# --- item 8: the IR cache -------------------------------------------------------------------------

@pytest.fixture
def repo(tmp_path: Path, pipelines: Path) -> Path:
    (pipelines / "templates").mkdir()
    (pipelines / "templates" / "base.yaml").write_text("owner: team-a\n")
    (pipelines / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\n"))
    (pipelines / "q.yaml").write_text(spec("q"))
    return pipelines


@pytest.fixture
def compiles(monkeypatch) -> list[Path]:
    """The spec files that missed the cache and went through the checker."""
    calls: list[Path] = []
    real = check.check_file
    monkeypatch.setattr(check, "check_file", lambda path, **kw: calls.append(Path(path).name) or real(path, **kw))
    return calls


def entry_of(cache: Path, name: str) -> Path:
    [entry] = [e for e in cache.glob("*.json") if json.loads(e.read_text())["ir"]["name"] == name]
    return entry


def forge(entry: Path, change) -> None:
    data = json.loads(entry.read_text())
    change(data)
    entry.write_text(json.dumps(data))


def test_a_warm_cache_is_used(repo, tmp_path, compiles):
    first = build.build_repo(repo, tmp_path / "cache")
    compiles.clear()
    assert build.build_repo(repo, tmp_path / "cache").pipelines == first.pipelines
    assert compiles == []


def test_an_entry_listing_no_files_does_not_survive_an_edit(repo, tmp_path, compiles):
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    forge(entry_of(cache, "p"), lambda d: (d.__setitem__("files", {}), d["ir"].__setitem__("spec_file", "/etc/")))
    compiles.clear()
    result = build.build_repo(repo, cache)
    assert compiles == ["p.yaml"]  # the forged entry is not trusted: it lists no spec
    assert {p.spec_file for p in result.pipelines} != {"/etc/"}
    (repo / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\nowner: edited\n"))
    assert {p.name: p.dags[0].owner for p in build.build_repo(repo, cache).pipelines}["p"] == "edited"


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: d.__setitem__("files", []), id="files-list"),
    pytest.param(lambda d: d.__setitem__("files", None), id="files-null"),
    pytest.param(lambda d: d.__setitem__("files", {"x": 1}), id="files-bad-digest"),
    pytest.param(lambda d: d.__setitem__("version", "0.0.0-forged"), id="wrong-version"),
    pytest.param(lambda d: d["ir"].__setitem__("ir_version", 999), id="wrong-ir-version"),
    pytest.param(lambda d: d["ir"]["dags"][0]["tasks"][0].__setitem__("kind", "bash"), id="unknown-kind"),
    pytest.param(lambda d: d["ir"]["dags"][0]["tasks"][0].__setitem__("exec", "rm -rf /"), id="unknown-field"),
    pytest.param(lambda d: d["ir"]["dags"][0]["tasks"][0].pop("step"), id="missing-field"),
    pytest.param(lambda d: d["ir"]["dags"][0].__setitem__("tags", "pipespec"), id="tags-string"),
    pytest.param(lambda d: d["ir"]["dags"][0]["retry"].__setitem__("count", "3"), id="count-string"),
    pytest.param(lambda d: d["ir"]["dags"][0]["retry"].__setitem__("count", True), id="count-bool"),
    pytest.param(lambda d: d["ir"]["dags"][0]["schedule"].__setitem__("kind", "hourly"), id="schedule-kind"),
    pytest.param(lambda d: d["ir"]["dags"][0]["tasks"][0].__setitem__("mapping", []), id="mapping-list"),
    pytest.param(lambda d: d["ir"]["dags"][0]["tasks"][-1].__setitem__("upstream", ["ghost"]), id="ghost-upstream"),
    pytest.param(lambda d: d["ir"].__setitem__("dags", {}), id="dags-mapping"),
    pytest.param(lambda d: d.__setitem__("ir", []), id="ir-list"),
    pytest.param(lambda d: d.clear(), id="empty"),
])
def test_a_corrupt_or_forged_entry_is_a_miss_not_a_crash(repo, tmp_path, compiles, change):
    cache = tmp_path / "cache"
    first = build.build_repo(repo, cache)
    forge(entry_of(cache, "p"), change)
    compiles.clear()
    result = build.build_repo(repo, cache)
    assert compiles == ["p.yaml"]
    assert result.pipelines == first.pipelines and result.broken == []
    compiles.clear()
    build.build_repo(repo, cache)
    assert compiles == []  # the recompiled entry replaced the forged one


def test_an_entry_cannot_serve_another_specs_pipeline(repo, tmp_path, compiles):
    cache = tmp_path / "cache"
    first = build.build_repo(repo, cache)
    theirs = json.loads(entry_of(cache, "q").read_text())
    forge(entry_of(cache, "p"), lambda d: d.__setitem__("ir", theirs["ir"]))
    compiles.clear()
    result = build.build_repo(repo, cache)
    assert compiles == ["p.yaml"] and result.pipelines == first.pipelines


def test_an_entry_cannot_name_another_spec_file(repo, tmp_path, compiles):
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    forge(entry_of(cache, "p"), lambda d: d["ir"].__setitem__("spec_file", str(repo / "q.yaml")))
    compiles.clear()
    build.build_repo(repo, cache)
    assert compiles == ["p.yaml"]


def test_an_entry_listing_files_outside_the_tree_is_not_read(repo, tmp_path, compiles, monkeypatch):
    """A listed FIFO or device would block the parse; a file outside the tree is none of the spec's business."""
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    fifo = repo / "templates" / "pipe.yaml"
    os.mkfifo(fifo)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("x: 1\n")
    for listed in (fifo, outside, Path("/dev/zero")):
        forge(entry_of(cache, "p"), lambda d: d["files"].__setitem__(str(listed), "0" * 64))
        compiles.clear()
        assert [p.name for p in build.build_repo(repo, cache).pipelines] == ["p", "q"]
        assert compiles == ["p.yaml"]


def test_the_key_follows_the_spec_bytes(repo, tmp_path, compiles):
    """An edit changes the key: the old entry is never even opened for the new bytes."""
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    before = {e.name for e in cache.glob("*.json")}
    (repo / "p.yaml").write_text(spec("p", "extends: templates/base.yaml\nowner: edited\n"))
    compiles.clear()
    result = build.build_repo(repo, cache)
    assert compiles == ["p.yaml"] and {p.name: p.dags[0].owner for p in result.pipelines}["p"] == "edited"
    assert len({e.name for e in cache.glob("*.json")} - before) == 1


def test_an_edited_template_is_still_a_miss(repo, tmp_path, compiles):
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    (repo / "templates" / "base.yaml").write_text("owner: team-b\n")
    compiles.clear()
    result = build.build_repo(repo, cache)
    assert compiles == ["p.yaml"] and {p.name: p.dags[0].owner for p in result.pipelines}["p"] == "team-b"


def test_every_example_is_served_from_a_warm_cache(tmp_path, compiles):
    """The shape check accepts every IR the compiler writes (else the cache would silently never hit)."""
    examples = Path(__file__).resolve().parents[2] / "pipelines"
    first = build.build_repo(examples, tmp_path / "cache")
    assert first.pipelines
    compiles.clear()
    again = build.build_repo(examples, tmp_path / "cache")
    assert again.pipelines == first.pipelines
    assert sorted(compiles) == sorted(Path(b.file).name for b in first.broken)  # only broken specs re-check


def test_a_policy_change_recompiles(repo, tmp_path, compiles, monkeypatch):
    from pipespec.schemas import policy

    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    rules = tmp_path / "policy.yaml"
    rules.write_text("# platform policy\n")
    monkeypatch.setenv(policy.POLICY_ENV, str(rules))
    compiles.clear()
    build.build_repo(repo, cache)
    assert sorted(compiles) == ["p.yaml", "q.yaml"]


def test_an_entry_that_is_not_a_regular_file_is_not_read(repo, tmp_path, compiles):
    cache = tmp_path / "cache"
    build.build_repo(repo, cache)
    entry = entry_of(cache, "p")
    entry.unlink()
    os.mkfifo(entry)
    compiles.clear()
    assert [p.name for p in build.build_repo(repo, cache).pipelines] == ["p", "q"]
    assert compiles == ["p.yaml"] and entry.is_file()  # replaced by a real entry


# --- reading a spec -------------------------------------------------------------------------------

@pytest.mark.timeout(20)
def test_a_fifo_or_device_is_refused_not_read(tmp_path):
    from pipespec.schemas.diagnostics import SpecError
    from pipespec.schemas.yamlload import load_file

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/zero")):
        with pytest.raises(SpecError) as info:
            load_file(target, "spec.yaml")
        assert "not a regular file" in info.value.diagnostic.message


def test_the_number_of_templates_one_spec_reads_is_capped(pipelines):
    """Within the depth and width caps a graph could still hold width**depth distinct templates."""
    (pipelines / "templates").mkdir()
    width = templates.MAX_PARENTS
    for i in range(width):
        leaves = ", ".join(f"leaf{i}_{j}.yaml" for j in range(width))
        (pipelines / "templates" / f"mid{i}.yaml").write_text(f"extends: [{leaves}]\nowner: mid{i}\n")
        for j in range(width):
            (pipelines / "templates" / f"leaf{i}_{j}.yaml").write_text(f"owner: leaf{i}-{j}\n")
    mids = ", ".join(f"templates/mid{i}.yaml" for i in range(width))
    (pipelines / "p.yaml").write_text(spec("p", f"extends: [{mids}]\n"))
    assert width + width * width > templates.MAX_TEMPLATES
    [diagnostic] = check_file(pipelines / "p.yaml").diagnostics
    assert f"more than {templates.MAX_TEMPLATES} templates" in diagnostic.message


@pytest.mark.airflow
def test_the_issue_repro_through_the_dag_loader(pipelines, outside, tmp_path):
    """The leak as reported: symlinks to a password file ended up in the placeholder DAG's doc."""
    pytest.importorskip("airflow")
    from pipespec.airflow.loader import load_dags

    (pipelines / "good.yaml").write_text(spec("good"))
    (pipelines / "leak.yaml").symlink_to(outside / "password.yaml")
    (pipelines / "team").mkdir()
    (pipelines / "team" / "templates").symlink_to(outside, target_is_directory=True)
    (pipelines / "team" / "via_template.yaml").write_text(spec("via", "extends: templates/password.yaml\n"))
    namespace: dict = {}
    load_dags(pipelines, namespace, tmp_path / "cache")
    assert set(namespace) == {"good__data", "pipespec_invalid__leak", "pipespec_invalid__via_template"}
    for dag_id in ("pipespec_invalid__leak", "pipespec_invalid__via_template"):
        shown = f"{namespace[dag_id].doc_md}\n{namespace[dag_id].description}"
        assert "symlink" in shown
        assert SECRET not in shown and "admin_password" not in shown and "secret_listing" not in shown


# --- isolation: one spec never hides the others ----------------------------------------------------

def test_a_spec_that_breaks_the_compiler_becomes_broken_and_the_others_build(pipelines, monkeypatch):
    (pipelines / "good.yaml").write_text(spec("good"))
    (pipelines / "boom.yaml").write_text(spec("boom"))
    import pipespec.compiler.compile as compile_module

    real = compile_module.compile_checked

    def explode_on_boom(checked):
        if checked.spec.pipeline == "boom":
            raise RecursionError("compiler bug")
        return real(checked)

    monkeypatch.setattr(compile_module, "compile_checked", explode_on_boom)
    result = build.build_repo(pipelines)
    assert [p.name for p in result.pipelines] == ["good"]
    [broken] = result.broken
    assert broken.file.endswith("boom.yaml") and "RecursionError: compiler bug" in broken.diagnostics[0].message


def test_check_reports_a_symlink_out_and_still_checks_the_rest(pipelines, outside, capsys):
    from pipespec.cli import main

    (pipelines / "good.yaml").write_text(spec("good"))
    (pipelines / "typo.yaml").write_text(spec("typo").replace("inference: null", "infrence: null"))
    (pipelines / "leak.yaml").symlink_to(outside / "password.yaml")
    assert main(["check", str(pipelines)]) == 1
    out = capsys.readouterr().out
    assert "leak.yaml" in out and "outside" in out and SECRET not in out
    assert "unknown key `infrence`" in out


def test_the_loader_lets_no_spec_take_over_another_pipelines_dags_or_assets(pipelines):
    """`check` reports both sides of a clash; the loader loads neither, so a newcomer sorted first
    cannot take over an existing pipeline's DAG ids or publish into its Asset (security review)."""
    (pipelines / "churn.yaml").write_text(spec("churn"))
    (pipelines / "aaa.yaml").write_text(spec("aaa").replace("pipeline: aaa", "pipeline: churn"))
    (pipelines / "aab.yaml").write_text(spec("aab").replace("s3://aab-bucket/x/", "s3://good-bucket/x/runs/aab"))
    (pipelines / "good.yaml").write_text(spec("good"))
    (pipelines / "other.yaml").write_text(spec("other"))
    result = build.build_repo(pipelines)
    assert [p.name for p in result.pipelines] == ["other"]
    messages = {Path(b.file).name: b.diagnostics[0].message for b in result.broken}
    assert "pipeline name `churn` is also used by" in messages["aaa.yaml"] and "aaa.yaml" in messages["churn.yaml"]
    assert "nests with `s3://good-bucket/x/`" in messages["aab.yaml"] and "neither is loaded" in messages["good.yaml"]
