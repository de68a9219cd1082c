"""`pipespec new NAME --from TEMPLATE`: a new spec that extends a template."""

from __future__ import annotations

import re
from pathlib import Path

from .templates import TEMPLATES_DIR


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
    target.write_text(
        "# yaml-language-server: $schema=../schemas/pipeline.schema.json\n"
        f"pipeline: {name}\n"
        f"extends: {relative}\n"
        f"description: TODO describe what {name} predicts and for whom.\n"
        "owner: TODO-team\n"
        "# Override what differs from the template, e.g.:\n"
        "# data:\n"
        f"#   publishes: s3://TODO-bucket/{name}/curated/\n"
    )
    return target
