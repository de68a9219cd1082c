"""Shipped, versioned templates: `extends: pipespec:<name>@<version>` (pipespec.schemas.shipped and
pipespec.schemas.templates). A released version never changes what a pin compiles to."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from pipespec.cli import main
from pipespec.compiler import build
from pipespec.compiler.compile import compile_checked
from pipespec.schemas import shipped
from pipespec.schemas.check import check_file
from pipespec.schemas.templates import resolve
from pipespec.schemas.yamlload import load_file
from tests.support.paths import ROOT, SNAPSHOTS

MANIFEST = SNAPSHOTS / "shipped_templates.sha256"
SHIPPED = ROOT / "pipespec" / "templates"


def spec(name: str, extends: str, extra: str = "", inference: bool = True) -> str:
    """A small spec extending `extends`; `extra` adds or overrides sections."""
    text = (f"pipeline: {name}\nextends: {extends}\nowner: team-a\n{extra}"
            "data:\n  sources:\n    - {name: raw, type: local, path: data/raw/, format: csv}\n"
            f"  publishes: s3://bucket/{name}/\n")
    scoring = f"inference:\n  input: s3://bucket/{name}/in/\n  output: s3://bucket/{name}/out/\n"
    return text + (scoring if inference else "")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def copy_of_shipped(tmp_path, monkeypatch) -> Path:
    """The shipped templates, copied to a temp dir that pipespec reads instead (a newer release)."""
    root = tmp_path / "site-packages" / "pipespec" / "templates"
    shutil.copytree(SHIPPED, root)
    monkeypatch.setattr(shipped, "shipped_root", lambda: root)
    return root


def compiled(spec_file: Path) -> dict:
    checked = check_file(spec_file)
    assert checked.ok and checked.spec is not None, checked.diagnostics
    return json.loads(json.dumps(compile_checked(checked).to_json()))


# --- released versions are frozen ----------------------------------------------------------------

def manifest() -> dict[str, str]:
    lines = [line.split() for line in MANIFEST.read_text().splitlines() if line and not line.startswith("#")]
    return {name: digest for digest, name in lines}


def test_every_released_version_is_unchanged_and_still_shipped():
    """Editing or deleting a released template fails here: a change must be a new version file."""
    released = manifest()
    assert released, "the manifest lists no template"
    for name, digest in released.items():
        path = SHIPPED / name
        assert path.is_file(), f"released template {name} was removed: old pins would stop compiling"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (
            f"released template {name} was edited: add a new version file instead")


def test_every_shipped_file_is_a_listed_version():
    """A new version is added to the manifest in the same change, and nothing else lies there."""
    on_disk = sorted(p.relative_to(SHIPPED).as_posix() for p in SHIPPED.rglob("*") if p.is_file())
    assert on_disk == sorted(manifest())
    assert [f"{s.name}/v{s.version}.yaml" for s in shipped.shipped_templates()] == sorted(manifest())


@pytest.mark.parametrize("template", shipped.shipped_templates(), ids=lambda s: s.ref)
def test_every_shipped_template_makes_a_spec_that_passes_check(tmp_path, template):
    trains = "train" in resolve(load_file(template.path), template.path, str)[0].value  # inference needs a model
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", template.ref, inference=trains)))
    assert checked.ok and checked.spec is not None, checked.diagnostics
    assert template.path.resolve() in checked.files
    assert template.description()  # `pipespec templates` has something to say about it


def test_the_shipped_templates_are_in_the_wheel(tmp_path):
    uv = ROOT / ".venv-boot" / "bin" / "uv"
    if not uv.is_file():
        pytest.skip("no uv in .venv-boot (make bootstraps it)")
    subprocess.run([str(uv), "build", "--wheel", "-o", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n.removeprefix("pipespec/templates/"): archive.read(n) for n in archive.namelist()
                    if n.startswith("pipespec/templates/")}
    assert packaged == {name: (SHIPPED / name).read_bytes() for name in manifest()}


# --- resolution ----------------------------------------------------------------------------------

def test_a_pinned_shipped_template_resolves_from_the_package(tmp_path):
    """No `templates/` directory is needed: the spec's repository holds only the spec."""
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular@1")))
    assert checked.ok and checked.spec is not None, checked.diagnostics
    assert checked.spec.train.model.type == "keras_tabular_classifier"
    assert checked.spec.tags == ["pipespec", "tabular"]
    assert checked.spec.retries.count == 3  # from base@1, through tabular@1
    assert checked.files[1:] == [SHIPPED.resolve() / "tabular" / "v1.yaml", SHIPPED.resolve() / "base" / "v1.yaml"]


def test_an_error_in_an_inherited_value_points_into_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the package: the installed file's absolute path is shown
    extra = "train: {model: {type: keras_tabular_regressor}}\n"  # the inherited metric no longer applies
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular@1", extra)))
    [diagnostic] = [d for d in checked.diagnostics if d.severity == "error"]
    shipped_file = SHIPPED.resolve() / "tabular" / "v1.yaml"
    line = shipped_file.read_text().splitlines().index("  metric: roc_auc") + 1
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == (str(shipped_file), line, 11)
    assert "roc_auc" in diagnostic.message


def test_a_team_template_can_extend_a_shipped_one(tmp_path):
    pipelines = tmp_path / "pipelines"
    write(pipelines / "templates" / "team.yaml", "extends: pipespec:tabular@1\nowner: ml-growth\ntags+: [growth]\n")
    checked = check_file(write(pipelines / "p.yaml", spec("p", "templates/team.yaml").replace("owner: team-a\n", "")))
    assert checked.ok and checked.spec is not None, checked.diagnostics
    assert checked.spec.owner == "ml-growth" and checked.spec.tags == ["pipespec", "tabular", "growth"]
    assert [p.relative_to(tmp_path if p.is_relative_to(tmp_path) else SHIPPED.resolve()).as_posix()
            for p in checked.files] == ["pipelines/p.yaml", "pipelines/templates/team.yaml",
                                        "tabular/v1.yaml", "base/v1.yaml"]


@pytest.mark.parametrize(("extends", "message", "hint"), [
    ("pipespec:tabluar@1", "no shipped template `pipespec:tabluar`", "did you mean `pipespec:tabular`?"),
    ("pipespec:tabular@7", "no version 7 of `pipespec:tabular`",
     "shipped versions: 1; the latest is `pipespec:tabular@1`"),
    ("pipespec:tabular", "`pipespec:tabular` names no version", "pin one, e.g. `pipespec:tabular@1` (the latest)"),
    ("pipespec:tabular@v1", "the version must be a whole number", "`pipespec:tabular@1`"),
    ("pipespec:tabular@01", "the version must be a whole number", "`pipespec:tabular@1`"),
    ("pipespec:../../etc/passwd@1", "is not a shipped template reference", "pipespec:<name>@<version>"),
    ("pipespec:Tabular@1", "is not a shipped template reference", "pipespec:<name>@<version>"),
])
def test_a_reference_that_names_no_shipped_version_is_an_error_with_a_hint(tmp_path, extends, message, hint):
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", extends)))
    [diagnostic] = checked.diagnostics
    assert (Path(diagnostic.file).name, diagnostic.line, diagnostic.code) == ("p.yaml", 2, "extends")
    assert message in diagnostic.message and hint in diagnostic.hint


# --- a new release never changes an old pin ------------------------------------------------------

def test_a_v1_pin_compiles_identically_after_v2_ships(tmp_path, copy_of_shipped):
    pinned = write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular@1"))
    before = compiled(pinned)
    v1 = (copy_of_shipped / "tabular" / "v1.yaml").read_text()
    write(copy_of_shipped / "tabular" / "v2.yaml",
          v1.replace("floor: 0.7", "floor: 0.9").replace("epochs: 10", "epochs: 30"))
    assert compiled(pinned) == before
    moved = write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular@2"))
    after = compiled(moved)
    assert after != before and "0.9" in json.dumps(after) and "0.9" not in json.dumps(before)
    unpinned = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular")))
    assert "e.g. `pipespec:tabular@2` (the latest)" in unpinned.diagnostics[0].hint


def test_the_ir_cache_lists_shipped_templates_and_an_edit_invalidates_it(tmp_path, copy_of_shipped):
    """The loader's cache digests every file a spec read, shipped templates included."""
    pipelines, cache = tmp_path / "repo" / "pipelines", tmp_path / "cache"
    write(pipelines / "p.yaml", spec("p", "pipespec:tabular@1"))
    [pipeline] = build.build_repo(pipelines, cache).pipelines
    [entry] = cache.glob("*.json")
    assert str((copy_of_shipped / "tabular" / "v1.yaml").resolve()) in json.loads(entry.read_text())["files"]
    v1 = copy_of_shipped / "tabular" / "v1.yaml"
    v1.write_text(v1.read_text().replace("floor: 0.7", "floor: 0.95"))  # only a broken install would do this
    [rebuilt] = build.build_repo(pipelines, cache).pipelines
    assert "0.95" in json.dumps(rebuilt.to_json()) and "0.95" not in json.dumps(pipeline.to_json())


def test_a_warm_cache_is_reused_for_a_spec_that_extends_a_shipped_template(tmp_path, monkeypatch):
    pipelines, cache = tmp_path / "pipelines", tmp_path / "cache"
    write(pipelines / "p.yaml", spec("p", "pipespec:tabular@1"))
    assert build.build_repo(pipelines, cache).pipelines
    import pipespec.schemas.check as check

    monkeypatch.setattr(check, "check_file", lambda *a, **k: pytest.fail("a warm cache checked the spec again"))
    assert build.build_repo(pipelines, cache).pipelines


# --- where shipped templates may come from and what they may extend ------------------------------

def test_a_symlink_in_the_package_that_leads_outside_it_is_refused(tmp_path, copy_of_shipped):
    secret = write(tmp_path / "outside" / "password.yaml", "owner: hunter2-secret\n")
    (copy_of_shipped / "evil").mkdir()
    (copy_of_shipped / "evil" / "v1.yaml").symlink_to(secret)
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:evil@1")))
    [diagnostic] = checked.diagnostics
    assert diagnostic.code == "extends" and "symlink" in diagnostic.message
    assert "hunter2" not in diagnostic.message + diagnostic.hint and "outside/" not in diagnostic.message


def test_a_shipped_template_cannot_extend_a_repository_file(tmp_path, copy_of_shipped):
    pipelines = tmp_path / "pipelines"
    write(pipelines / "templates" / "team.yaml", "owner: someone\n")
    write(copy_of_shipped / "odd" / "v1.yaml", "extends: templates/team.yaml\n")
    checked = check_file(write(pipelines / "p.yaml", spec("p", "pipespec:odd@1")))
    [diagnostic] = checked.diagnostics
    assert diagnostic.file.endswith("odd/v1.yaml") and diagnostic.line == 1
    assert "can extend only shipped templates" in diagnostic.message


def test_a_cycle_among_shipped_templates_names_them_by_reference(tmp_path, copy_of_shipped):
    write(copy_of_shipped / "base" / "v2.yaml", "extends: pipespec:tabular@2\n")
    write(copy_of_shipped / "tabular" / "v2.yaml", "extends: pipespec:base@2\n")
    checked = check_file(write(tmp_path / "pipelines" / "p.yaml", spec("p", "pipespec:tabular@2")))
    [diagnostic] = checked.diagnostics
    assert "pipespec:tabular@2 → pipespec:base@2 → pipespec:tabular@2" in diagnostic.message


# --- pipespec templates --------------------------------------------------------------------------

def test_pipespec_templates_lists_one_line_each(capsys, tmp_path):
    write(tmp_path / "pipelines" / "templates" / "team.yaml", "# Our defaults.\nextends: pipespec:base@1\n")
    assert main(["templates", "--dir", str(tmp_path / "pipelines")]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [s.ref for s in shipped.shipped_templates()] + ["templates/team.yaml"]
    assert [line.split()[0] for line in lines] == expected
    assert lines[-1].endswith("Our defaults.")
    tabular = next(line for line in lines if line.startswith("pipespec:tabular@1 "))
    assert "Tabular classifier" in tabular
