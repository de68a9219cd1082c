"""The repository around spec files checked on their own (`pipespec check FILE...`, the pre-commit
hook, which passes only the changed files).

The repository rules (pipespec.schemas.repo) need every spec of the specs folder, but only their
names and Assets: the other specs are loaded, merged with their templates and validated, never
checked in full (no semantic or policy checks, no positions for findings), and nothing is reported
on them. A spec that does not load or validate, or that holds a secret, gives no facts, as in a full
check."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from pipespec.schemas.check import display_name, is_template
from pipespec.schemas.diagnostics import SpecError
from pipespec.schemas.discover import discover
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.repo import SpecFacts
from pipespec.schemas.secrets import find_secrets
from pipespec.schemas.templates import resolve
from pipespec.schemas.yamlload import load_file


def context_facts(roots: Iterable[Path], skip: Iterable[Path]) -> list[SpecFacts]:
    """The facts of every spec under the folders `roots`, except the files `skip` (being checked)."""
    skipped = {p.resolve() for p in skip}
    # Findings on the folder itself (a symlink out, a non-UTF-8 name) are not about the files checked.
    files, _ = discover(sorted(set(roots)))
    facts = [spec_facts(f) for f in files if f.resolve() not in skipped and not is_template(f)]
    return [f for f in facts if f is not None]


def spec_facts(path: Path) -> SpecFacts | None:
    """A spec's name and Assets, or None when it does not load, validate or is refused for a secret."""
    display = display_name(path)
    try:
        merged, _ = resolve(load_file(path, display), path, display_name)
        if find_secrets(merged):
            return None
        return SpecFacts.of(display, PipelineSpec.model_validate(merged.to_plain()))
    except (SpecError, ValidationError):
        return None
