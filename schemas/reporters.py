"""Reporters: human text (source line and caret), JSON, GitHub Actions annotations.

No reporter echoes a secret: lines holding one are never quoted, and findings that quote one are
replaced (`secrets.redact`)."""

from __future__ import annotations

import json

from pipespec.schemas.diagnostics import Diagnostic
from pipespec.schemas.secrets import redact


def text(diagnostics: list[Diagnostic], checked_files: int, *, excerpts: bool = True) -> str:
    """`excerpts=False` leaves out source lines and carets (for places that must not quote the spec)."""
    lines: list[str] = []
    sources: dict[str, tuple[str, ...]] = {}  # per report: files change between runs
    diagnostics = redact(diagnostics)
    redacted = redacted_lines(diagnostics)
    for d in diagnostics:
        where = f" ({d.path})" if d.path else ""
        lines.append(f"{d.file}:{d.line}:{d.col}: {d.severity}: {d.message}{where}")
        source = None
        if excerpts and (d.file, d.line) not in redacted:
            if d.file not in sources:
                sources[d.file] = _lines(d.file)
            source = _source_line(sources[d.file], d.line)
        if source is not None:
            gutter = f"{d.line:>5} | "
            lines.append(gutter + source)
            lines.append(" " * (len(gutter) + len(source[: d.col - 1])) + "^")
        if d.hint:
            lines.append(f"      hint: {d.hint}")
    errors = sum(d.severity == "error" for d in diagnostics)
    files = len({d.file for d in diagnostics if d.severity == "error"})
    lines.append(f"{checked_files} file(s) checked: " + (
        f"{errors} error(s) in {files} file(s)" if errors else "all good"))
    return "\n".join(lines)


def as_json(diagnostics: list[Diagnostic], checked_files: int) -> str:
    """The diagnostics as a JSON report with counts, secrets redacted."""
    diagnostics = redact(diagnostics)
    return json.dumps({"checked_files": checked_files, "errors": sum(d.severity == "error" for d in diagnostics),
                       "diagnostics": [d.to_json() for d in diagnostics]}, indent=2)


def github(diagnostics: list[Diagnostic], checked_files: int) -> str:
    """The diagnostics as GitHub Actions annotations, one per line, secrets redacted."""
    def escape(value: str, prop: bool = False) -> str:
        value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return value.replace(":", "%3A").replace(",", "%2C") if prop else value

    out = []
    for d in redact(diagnostics):
        title = escape(f"pipespec {d.code}", prop=True)
        body = escape(d.message + (f" (hint: {d.hint})" if d.hint else ""))
        out.append(f"::{d.severity} file={escape(d.file, True)},line={d.line},col={d.col},title={title}::{body}")
    return "\n".join(out)


REPORTERS = {"text": text, "json": as_json, "github": github}


def redacted_lines(diagnostics: list[Diagnostic]) -> set[tuple[str, int]]:
    """Lines that hold a secret: no report quotes them, whichever finding points there
    (a flow-style line can carry a secret and an unrelated mistake)."""
    return {(d.file, d.line) for d in diagnostics if d.redact_source}


def _lines(file: str) -> tuple[str, ...]:
    try:
        with open(file, encoding="utf-8", errors="replace") as handle:
            return tuple(handle.read(2_000_000).splitlines())
    except OSError:
        return ()


def _source_line(lines: tuple[str, ...], line: int) -> str | None:
    if not 1 <= line <= len(lines):
        return None
    source = lines[line - 1].replace("\t", " ")
    return source if len(source) <= 200 else source[:200] + "…"


