"""`pipespec new NAME --from TEMPLATE`: a new spec that extends a template."""

from __future__ import annotations

import re
from pathlib import Path

from pipespec.schemas.diagnostics import SpecError
from pipespec.schemas.templates import TEMPLATES_DIR


class ScaffoldError(Exception):
    pass


def new_spec(name: str, template: str, directory: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise ScaffoldError(f"`{name}` is not a valid pipeline name (lower_snake_case, starting with a letter)")
    template_path = (directory / template).resolve()
    root = (directory / TEMPLATES_DIR).resolve()
    if not template_path.is_relative_to(root) or not template_path.is_file():
        options = sorted(p.relative_to(directory).as_posix() for p in root.glob("*.y*ml")) if root.is_dir() else []
        raise ScaffoldError(f"no template `{template}` under {directory}/{TEMPLATES_DIR}/; "
                            f"available: {', '.join(options) or 'none'}")
    target = directory / f"{name}.yaml"
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name")
    relative = template_path.relative_to(directory.resolve()).as_posix()
    inherited = _inherited_sections(template_path)
    lines = [
        "# yaml-language-server: $schema=../schemas/pipeline.schema.json",
        f"pipeline: {name}",
        f"extends: {relative}",
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
    target.write_text("\n".join(lines) + "\n")
    return target


def _inherited_sections(template: Path) -> set[str]:
    from pipespec.schemas.templates import resolve
    from pipespec.schemas.yamlload import load_file

    try:
        merged, _ = resolve(load_file(template), template, str)
    except SpecError as exc:
        raise ScaffoldError(f"template {template.name} has errors: {exc.diagnostic.message}") from None
    return set(merged.value)
