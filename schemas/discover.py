"""Finding spec files. Light on purpose: the DAG loader lists files on every parse,
and with a warm IR cache it never needs the models or the checker."""

from __future__ import annotations

from pathlib import Path

from .diagnostics import Diagnostic

SPEC_SUFFIXES = (".yaml", ".yml")


def discover(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Spec files under `paths`; a path that does not exist is a diagnostic, not a silent skip."""
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "", "no such file or directory",
                                       "pass spec files or directories that hold them", code="usage"))
    return list(dict.fromkeys(files)), problems
