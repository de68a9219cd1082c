"""Scaffolding: `pipespec new NAME --from TEMPLATE` (a spec that extends a template) and
`pipespec init [DIR]` (a team repository of specs that works at once)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipespec import __version__
from pipespec.local import scaffold_files as files
from pipespec.schemas import shipped
from pipespec.schemas.diagnostics import SpecError
from pipespec.schemas.templates import TEMPLATES_DIR

SCHEMA_FILE = Path(".pipespec") / "pipeline.schema.json"  # what `init` writes and the editor settings bind
LEGACY_SCHEMA = "../schemas/pipeline.schema.json"  # pipespec's own checkout: pipelines/ beside schemas/
FIRST_PIPELINE = "example"
FIRST_TEMPLATE = "pipespec:tabular@1"


class ScaffoldError(Exception):
    """`new` or `init` cannot proceed; the message says why."""


def new_spec(name: str, template: str, directory: Path) -> Path:
    """Write `directory/NAME.yaml`, a spec extending `template`; never over an existing file."""
    target = directory / f"{name}.yaml"
    text = spec_text(name, template, directory)
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name")
    target.write_text(text, encoding="utf-8")
    return target


def spec_text(name: str, template: str, directory: Path) -> str:
    """A new spec named `name` extending `template`: a shipped `pipespec:NAME[@N]` (a bare name pins
    the latest version) or a file under `directory/templates/`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise ScaffoldError(f"`{name}` is not a valid pipeline name (lower_snake_case, starting with a letter)")
    if shipped.is_ref(template):
        try:
            found = shipped.lookup(template, pinned=False)
        except shipped.TemplateRefError as exc:
            raise ScaffoldError(f"{exc.message}; {exc.hint}") from None
        template_path, reference = found.path, found.ref
    else:
        template_path = _team_template(template, directory)
        reference = template_path.relative_to(directory.resolve()).as_posix()
    inherited = _inherited_sections(template_path)
    lines = [
        f"# yaml-language-server: $schema={_schema_reference(directory)}",
        f"pipeline: {name}",
        f"extends: {reference}",
        f"description: TODO describe what {name} predicts and for whom.",
        "owner: TODO-team",
        "",
        "# What every pipeline states itself; the template supplies the rest.",
        "data:",
        f"  sources:\n    - {{name: todo_source, type: local, path: data/{name}/, format: jsonl}}",
        f"  publishes: s3://todo-bucket/{name}/curated/",
    ]
    if "inference" in inherited:
        lines += ["inference:", f"  input: s3://todo-bucket/{name}/incoming/",
                  f"  output: s3://todo-bucket/{name}/predictions/"]
    return "\n".join(lines) + "\n"


def _team_template(template: str, directory: Path) -> Path:
    template_path = (directory / template).resolve()
    root = (directory / TEMPLATES_DIR).resolve()
    if not template_path.is_relative_to(root) or not template_path.is_file():
        options = sorted(p.relative_to(directory).as_posix() for p in root.glob("*.y*ml")) if root.is_dir() else []
        refs = [s.ref for s in shipped.shipped_templates()]
        raise ScaffoldError(f"no template `{template}` under {directory}/{TEMPLATES_DIR}/; "
                            f"available: {', '.join(options) or 'none'}; shipped: {', '.join(refs) or 'none'}")
    return template_path


def _schema_reference(directory: Path) -> str:
    """The JSON Schema the editor should use, relative to `directory`: the one `init` wrote above it."""
    start = directory.resolve()
    for folder in (start, *start.parents):
        if (folder / SCHEMA_FILE).is_file():
            return Path(os.path.relpath(folder / SCHEMA_FILE, start)).as_posix()
    return LEGACY_SCHEMA


def _inherited_sections(template: Path) -> set[str]:
    from pipespec.schemas.templates import resolve
    from pipespec.schemas.yamlload import load_file

    try:
        merged, _ = resolve(load_file(template), template, str)
    except SpecError as exc:
        raise ScaffoldError(f"template {template.name} has errors: {exc.diagnostic.message}") from None
    return set(merged.value)


# --- pipespec init -------------------------------------------------------------------------------

@dataclass
class InitResult:
    """The files `init` wrote, and those it kept because they existed."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # existed already; `--force` overwrites them


def init_repo(directory: Path, force: bool = False) -> InitResult:
    """Create a team repository of specs in `directory`; existing files are kept unless `force`."""
    from pipespec.schemas.jsonschema import render_schema

    result = InitResult()
    contents: list[tuple[Path, str]] = [
        (SCHEMA_FILE, render_schema()),  # first: the first spec's `$schema` comment points at it
        (Path(".vscode") / "settings.json", _editor_settings()),
        (Path(".vscode") / "extensions.json", json.dumps({"recommendations": ["redhat.vscode-yaml"]}, indent=2) + "\n"),
        (Path("dags") / "pipespec_dags.py", files.DAGS_FILE),
        (Path(".pre-commit-config.yaml"), files.PRE_COMMIT),
        (Path(".github") / "workflows" / "pipespec.yml", files.WORKFLOW.replace("{version}", __version__)),
        (Path(".gitignore"), files.GITIGNORE),
        (Path("README.md"), files.README.replace("{first}", FIRST_PIPELINE).replace("{version}", __version__)),
    ]
    for relative, text in contents:
        _write(directory / relative, text, force, result)
    pipelines = directory / "pipelines"
    pipelines.mkdir(parents=True, exist_ok=True)
    _write(pipelines / f"{FIRST_PIPELINE}.yaml", spec_text(FIRST_PIPELINE, FIRST_TEMPLATE, pipelines), force, result)
    return result


def _editor_settings() -> str:
    globs = ["pipelines/**/*.yaml", "pipelines/**/*.yml"]
    return json.dumps({"yaml.schemas": {f"./{SCHEMA_FILE.as_posix()}": globs}}, indent=2) + "\n"


def _write(path: Path, text: str, force: bool, result: InitResult) -> None:
    if (path.exists() or path.is_symlink()) and not force:
        result.kept.append(path)
        return
    if path.is_symlink():  # --force replaces the link, never writes through it to wherever it points
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    result.written.append(path)
