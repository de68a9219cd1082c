"""Diagnostics: every problem pipespec finds, with where it is and how to fix it.

Checking is separate from reporting (the check-jsonschema approach): checks
produce `Diagnostic` values; `pipespec.schemas.reporters` turns them into text, JSON or
GitHub Actions annotations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

YamlPath = tuple[str | int, ...]


class Loc(NamedTuple):
    """A position in a YAML file, 1-based like editors show it. A tuple: one is built per YAML value."""

    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: where it is (file, line, column, YAML path), what is wrong and how to fix it."""

    file: str
    line: int
    col: int
    path: str  # YAML path such as `data.sources[1].uri`; empty for the document
    message: str
    hint: str = ""
    code: str = "spec"
    severity: Literal["error", "warning"] = "error"
    # Secrets must never be echoed back: no report quotes a source line that holds a redacted
    # finding, whichever finding points at that line (see `report.redacted_lines`).
    redact_source: bool = field(default=False, compare=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("redact_source")
        return data


class SpecError(Exception):
    """Raised inside the loader to stop at a problem that makes the rest meaningless."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def format_path(path: YamlPath) -> str:
    """A YAML path as text: `data.sources[1].uri`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def at(loc: Loc, path: YamlPath, message: str, hint: str = "", code: str = "spec", **kw) -> Diagnostic:
    """A Diagnostic at a YAML position."""
    return Diagnostic(loc.file, loc.line, loc.col, format_path(path), message, hint, code, **kw)
