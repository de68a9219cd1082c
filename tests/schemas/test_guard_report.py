"""The text reporter can leave out source excerpts (for places that must never quote a spec's lines)."""

from __future__ import annotations

from pathlib import Path

from pipespec.schemas import reporters as report
from pipespec.schemas.diagnostics import Diagnostic


def test_text_without_excerpts_prints_no_source_line_or_caret(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: demo\nmodel: {kind: nope_marker}\n")
    d = Diagnostic(str(spec), 2, 16, "model.kind", "unknown model kind", hint="pick one of: keras")

    with_excerpt = report.text([d], 1)
    assert "nope_marker" in with_excerpt and "^" in with_excerpt  # the default still quotes the line

    out = report.text([d], 1, excerpts=False)
    assert out.splitlines() == [f"{spec}:2:16: error: unknown model kind (model.kind)",
                                "      hint: pick one of: keras",
                                "1 file(s) checked: 1 error(s) in 1 file(s)"]
