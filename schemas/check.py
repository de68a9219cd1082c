"""Check spec files: load → extends → secrets → models → semantics → platform policy → repo rules.

All problems are collected; a spec gets as far as it can so one mistake
does not hide the next.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from pipespec.schemas.diagnostics import Diagnostic, SpecError, at
from pipespec.schemas.discover import SPEC_SUFFIXES, discover  # noqa: F401 - part of this module's interface
from pipespec.schemas.locate import locate
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.policy import Policy, PolicyFileError, active_policy, check_spec
from pipespec.schemas.secrets import find_secrets, redact
from pipespec.schemas.semantics import run_checks
from pipespec.schemas.templates import TEMPLATES_DIR, resolve
from pipespec.schemas.validation_errors import from_validation_error
from pipespec.schemas.yamlload import Node, load_file



@dataclass
class CheckedSpec:
    """One checked file: the spec (None when it has errors), its YAML tree and its diagnostics."""

    file: Path
    display: str
    is_template: bool
    spec: PipelineSpec | None = None
    node: Node | None = None  # merged YAML tree, for locating later findings
    files: list[Path] = field(default_factory=list)  # the spec and every template it read
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def at_path(self, path: tuple, message: str, hint: str, code: str = "semantic", key: bool = False) -> Diagnostic:
        """A finding at `path`; containers (and, with `key`, any value) are pointed at by their key."""
        assert self.node is not None
        target, found, _ = locate(self.node, path)
        container = isinstance(target.value, (dict, list))
        loc = (target.key_loc or target.loc) if container or key else target.loc
        return at(loc, found or path, message, hint, code=code)


def display_name(path: Path) -> str:
    """Paths as a user typed them: relative inside the working directory, absolute outside."""
    return _display(str(path), os.getcwd())


@lru_cache(maxsize=4096)
def _display(path: str, cwd: str) -> str:
    return _shown(Path(path).resolve(), cwd)


def _shown(absolute: Path, cwd: str) -> str:
    return absolute.relative_to(cwd).as_posix() if absolute.is_relative_to(cwd) else str(absolute)


def is_template(path: Path) -> bool:
    """Whether a file lies directly in a `templates/` folder."""
    return path.resolve().parent.name == TEMPLATES_DIR


def check_file(path: Path, policy: Policy | None = None, specs_folder: Path | None = None) -> CheckedSpec:
    """Check one spec; `policy` defaults to the one $PIPESPEC_POLICY names (built-in rules without it).

    `specs_folder` is what the policy's `spec_paths` are relative to (default: `specs_root(path)`)."""
    result = _check(path, policy, specs_folder)
    # Every consumer (reporters, the loader's placeholder DAGs) gets findings that echo no secret.
    result.diagnostics = redact(result.diagnostics)
    return result


SPECS_DIR = "pipelines"  # the specs folder `check`, the DAG loader and the pre-commit hook default to


def specs_root(path: Path) -> Path:
    """The specs folder around the spec file `path`: what the policy's `spec_paths` are relative to and
    what `pipespec check FILE` reads for the repository rules.

    Looking up from the file's folder, never above the repository (the nearest folder with `.git`): the
    outermost folder that holds `templates/`, else the outermost folder named `pipelines`, else the
    file's own folder. Outside a git repository nothing says where the project ends: the nearest folder
    that holds `templates/` (where `extends` looks) or is named `pipelines` counts, with the unbroken
    run of such folders right above it, so a stray `/tmp/templates` far above a project's own specs
    folder does not make all of /tmp the specs folder."""
    return _specs_folder_of(path.resolve().parent)


@lru_cache(maxsize=256)  # a repository's specs share a few folders; each lookup stats every ancestor
def _specs_folder_of(folder: Path) -> Path:
    ancestors = _in_repository(folder) or _marked_run(folder)
    for marks in (_holds_templates, lambda p: p.name == SPECS_DIR):
        found = [p for p in ancestors if marks(p)]
        if found:
            return found[-1]
    return folder


def _holds_templates(folder: Path) -> bool:
    return (folder / TEMPLATES_DIR).is_dir()


def _in_repository(folder: Path) -> list[Path]:
    """`folder` and its ancestors up to the repository root; empty outside a git repository."""
    ancestors = []
    for candidate in (folder, *folder.parents):
        ancestors.append(candidate)
        if (candidate / ".git").exists():
            return ancestors
    return []


def _marked_run(folder: Path) -> list[Path]:
    """`folder` and its ancestors up to the nearest specs-like folder and the unbroken run of them above it."""
    marked = [_holds_templates(p) or p.name == SPECS_DIR for p in (folder, *folder.parents)]
    ancestors = [folder, *folder.parents]
    if True not in marked:
        return [folder]
    end = marked.index(True)
    while end + 1 < len(marked) and marked[end + 1]:
        end += 1
    return ancestors[:end + 1]


def _check(path: Path, policy: Policy | None, specs_folder: Path | None) -> CheckedSpec:
    real = path.resolve()  # once: each resolve stats every folder of the path
    result = CheckedSpec(path, _shown(real, os.getcwd()), real.parent.name == TEMPLATES_DIR)
    try:
        root = load_file(path, result.display)
        merged, result.files = resolve(root, path, display_name)
    except SpecError as exc:
        result.diagnostics.append(exc.diagnostic)
        return result
    result.node = merged
    secrets = find_secrets(merged)
    result.diagnostics += secrets
    secret_spots = {(d.file, d.line, d.col) for d in secrets}
    try:
        spec = PipelineSpec.model_validate(merged.to_plain())
    except ValidationError as exc:
        found = from_validation_error(exc, merged, PipelineSpec, ignore_missing=result.is_template)
        result.diagnostics += [d for d in found if (d.file, d.line, d.col) not in secret_spots]
        return result
    if result.is_template:
        return result
    semantic = [result.at_path(path, message, hint) for path, message, hint in run_checks(spec)]
    try:
        # Resolved on every call, never cached: a long-running DAG processor sees a specs folder that
        # is a symlink swapped by git-sync.
        top = specs_folder.resolve() if specs_folder is not None else _specs_folder_of(real.parent)
        where = real.relative_to(top).as_posix() if real.is_relative_to(top) else real.name
        violations = check_spec(policy if policy is not None else active_policy(), spec.model_dump(warnings=False),
                                where)
        semantic += [result.at_path(v.path, v.message, v.hint, code="policy", key=v.key) for v in violations]
    except PolicyFileError as exc:  # a broken policy refuses every spec, pointing at the policy file
        result.diagnostics += exc.diagnostics
    # A finding at a secret's position would quote the secret back.
    result.diagnostics += [d for d in semantic if (d.file, d.line, d.col) not in secret_spots]
    if not secrets:
        result.spec = spec
    return result


def sort_key(d: Diagnostic) -> tuple:
    """Diagnostics order: file, line, column, message."""
    return (d.file, d.line, d.col, d.message)
