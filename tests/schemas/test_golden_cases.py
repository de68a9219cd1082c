"""Golden spec cases: every file under tests/cases/ states what `check_file` must say about it.

An invalid case starts with comment lines such as

    # expect: 7:12 unknown key `conn` [hint: did you mean `conn_id`?]
    # expect: templates/base.yaml:3:5 `2 minutes` has the wrong format
    # secret: hunter2

`expect` gives `[file:]line:col`, a substring of the message and, optionally,
a substring of the hint; the file is relative to the case file (default: the
case itself). The diagnostics must match the expectations exactly: nothing
missing, nothing extra. `secret` names a value that must never appear in any
report. Valid cases must produce no diagnostics at all.

Files under a `templates/` directory are partial specs used by `extends`
cases; they are not cases themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipespec.schemas import reporters as report
from pipespec.schemas.check import check_file
from pipespec.schemas.diagnostics import Diagnostic

from tests.support.paths import CASES  # noqa: E402
INVALID = sorted((CASES / "invalid").glob("*.yaml"))
VALID = sorted((CASES / "valid").glob("*.yaml"))

_EXPECT = re.compile(
    r"^#\s*expect:\s*(?:(?P<file>[^\s:]+):)?(?P<line>\d+):(?P<col>\d+)\s+(?P<message>.+?)"
    r"(?:\s+\[hint:\s*(?P<hint>.+)\])?\s*$")
_SECRET = re.compile(r"^#\s*secret:\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True)
class Expected:
    file: Path
    line: int
    col: int
    message: str
    hint: str | None

    def matches(self, d: Diagnostic) -> bool:
        return (Path(d.file).resolve() == self.file and (d.line, d.col) == (self.line, self.col)
                and self.message in d.message and (self.hint is None or self.hint in d.hint))

    def __str__(self) -> str:
        hint = f" [hint: {self.hint}]" if self.hint else ""
        return f"{self.file.name}:{self.line}:{self.col} {self.message}{hint}"


def _header(case: Path) -> list[str]:
    lines = []
    for line in case.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def expectations(case: Path) -> list[Expected]:
    out = []
    for line in _header(case):
        if line.lstrip("# ").startswith("expect"):
            match = _EXPECT.match(line)
            assert match, f"{case.name}: malformed expectation {line!r}"
            target = (case.parent / match["file"]).resolve() if match["file"] else case.resolve()
            out.append(Expected(target, int(match["line"]), int(match["col"]), match["message"], match["hint"]))
    return out


def secrets(case: Path) -> list[str]:
    return [m["value"] for line in _header(case) if (m := _SECRET.match(line))]


def _show(diagnostics: list[Diagnostic]) -> str:
    return "\n".join(f"  {d.file}:{d.line}:{d.col}: {d.message} (hint: {d.hint})" for d in diagnostics) or "  (none)"


def test_there_are_enough_cases():
    assert len(INVALID) >= 25
    assert len(VALID) >= 4
    assert all(expectations(case) for case in INVALID), "every invalid case must declare its diagnostics"


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_case(case: Path):
    expected = expectations(case)
    result = check_file(case)
    found = result.diagnostics

    missing = [e for e in expected if not any(e.matches(d) for d in found)]
    extra = [d for d in found if not any(e.matches(d) for e in expected)]
    assert not missing and not extra and len(found) == len(expected), (
        f"{case.name}\nmissing:\n" + "\n".join(f"  {e}" for e in missing)
        + f"\nunexpected:\n{_show(extra)}\nall diagnostics:\n{_show(found)}")
    assert not result.ok
    assert all(d.severity == "error" and d.line >= 1 and d.col >= 1 for d in found)


@pytest.mark.parametrize("case", [c for c in INVALID if secrets(c)], ids=lambda p: p.stem)
def test_secret_values_never_reported(case: Path):
    result = check_file(case)
    assert any(d.code == "secret" for d in result.diagnostics)
    assert result.spec is None, "a spec holding a secret must not be handed on"
    outputs = [reporter(result.diagnostics, 1) for reporter in report.REPORTERS.values()]
    for value in secrets(case):
        assert value in case.read_text(), "the case must actually contain the secret"
        for output in outputs:
            assert value not in output
    # The text report names the place but does not echo the line that holds the secret.
    text = report.text(result.diagnostics, 1)
    secret = next(d for d in result.diagnostics if d.code == "secret")
    assert f":{secret.line}:{secret.col}: error:" in text
    assert f"{secret.line:>5} | " not in text


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_case(case: Path):
    result = check_file(case)
    assert result.diagnostics == [], f"{case.name}\n{_show(result.diagnostics)}"
    assert result.ok
    assert result.spec is not None


def test_append_and_remove_through_extends():
    result = check_file(CASES / "valid" / "extends_append_and_remove.yaml")
    spec = result.spec
    assert spec is not None
    assert spec.tags == ["pipespec", "scoring", "churn"]
    assert spec.inference is None
    assert spec.owner == "ml-platform"
    assert spec.evaluate is not None and spec.evaluate.metric == "roc_auc"
    assert [p.name for p in result.files] == ["extends_append_and_remove.yaml", "scoring.yaml"]


def test_extends_chain_applies_each_level():
    result = check_file(CASES / "valid" / "extends_chain.yaml")
    spec = result.spec
    assert spec is not None
    assert spec.tags == ["pipespec", "scoring", "batchless", "chained"]
    assert spec.inference is None
    assert spec.owner == "ml-growth"
    assert [p.name for p in result.files] == ["extends_chain.yaml", "no_inference.yaml", "scoring.yaml"]


def test_merged_values_remember_their_file():
    result = check_file(CASES / "valid" / "extends_append_and_remove.yaml")
    assert result.node is not None
    train = result.node.value["train"]
    assert Path(train.loc.file).name == "scoring.yaml"
    pipeline = result.node.value["pipeline"]
    assert Path(pipeline.loc.file).name == "extends_append_and_remove.yaml"
    assert (pipeline.loc.line, pipeline.loc.col) == (2, 11)


def test_yaml12_scalars_stay_strings():
    spec = check_file(CASES / "valid" / "yaml12_scalars.yaml").spec
    assert spec is not None
    assert spec.description == "2024-01-01"
    assert spec.tags == ["no", "yes", "off", "2024-01-01"]
    assert spec.alerts[0].on == ["failure"]


def test_asset_expressions_keep_their_shape():
    from pipespec.schemas.assets import asset_uris
    from pipespec.schemas.models.common import AllOf, AnyOf

    spec = check_file(CASES / "valid" / "asset_and_or_schedule.yaml").spec
    assert spec is not None and spec.train is not None and spec.train.schedule is not None
    assets = spec.train.schedule.assets
    assert isinstance(assets, AnyOf)
    assert isinstance(assets.any[0], AllOf)
    assert list(asset_uris(assets)) == ["s3://bucket/features/", "s3://bucket/labels/", "s3://bucket/backfill/"]

    spec = check_file(CASES / "valid" / "assets_or_time.yaml").spec
    assert spec is not None and spec.train is not None and spec.train.schedule is not None
    assert spec.train.schedule.assets == ["s3://bucket/assets_or_time/"]
    assert spec.train.schedule.or_cron == "0 4 * * mon"
    assert spec.train.schedule.cron is None


def test_templates_are_checked_as_partial_specs():
    template = CASES / "valid" / "templates" / "scoring.yaml"
    result = check_file(template)
    assert result.is_template
    assert result.diagnostics == []
    # A template may leave required keys out, but not misspell them.
    bad = CASES / "invalid" / "templates" / "bad_retries.yaml"
    result = check_file(bad)
    assert result.is_template
    assert [(d.line, d.col) for d in result.diagnostics] == [(5, 10)]
