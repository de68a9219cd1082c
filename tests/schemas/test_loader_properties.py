"""Property tests: whatever bytes a spec file holds, `check_file` answers with a
spec or with diagnostics that point into a file, and never raises.

The runs are derandomized so the suite gives the same answer every time; the
`@example`s pin inputs that once broke the checker.
"""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipespec.schemas.check import CheckedSpec, check_file
from pipespec.schemas.diagnostics import Diagnostic

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
PIPELINES = ROOT / "pipelines"
EXAMPLES = {p.name: p.read_text(encoding="utf-8") for p in sorted(PIPELINES.glob("*.yaml"))}
TEMPLATES = {p.name: p.read_text(encoding="utf-8") for p in sorted((PIPELINES / "templates").glob("*.yaml"))}

# PIPESPEC_FUZZ_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("PIPESPEC_FUZZ_EXAMPLES", "200")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory) -> Path:
    """A scratch copy of pipelines/templates/, so mutated `extends:` lines still resolve."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(PIPELINES / "templates", root / "templates")
    return root


def _line_count(file: str, cache: dict[str, int]) -> int:
    if file not in cache:
        try:
            cache[file] = len(Path(file).read_bytes().split(b"\n"))
        except OSError:
            cache[file] = 1
    return cache[file]


def assert_allowed_outcome(result: object, path: Path) -> None:
    assert isinstance(result, CheckedSpec)
    if result.is_template:
        # A template is a partial spec: it never becomes a spec, and may well be fine.
        assert result.spec is None
    else:
        assert result.spec is not None or result.diagnostics, "neither a spec nor a diagnostic"
    if result.spec is None and result.diagnostics:
        assert any(d.severity == "error" for d in result.diagnostics)
    lines: dict[str, int] = {}
    for d in result.diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.line >= 1 and d.col >= 1, d
        assert d.message.strip(), d
        assert d.file, d
        # Positions are inside the file they name (a missing key may sit just past the end).
        assert d.line <= _line_count(d.file, lines) + 1, d
    assert path.exists()


def check_bytes(spec_dir: Path, raw: bytes) -> CheckedSpec:
    path = spec_dir / "spec.yaml"
    path.write_bytes(raw)
    result = check_file(path)
    assert_allowed_outcome(result, path)
    return result


# (a) random bytes ----------------------------------------------------------------------------------

@FUZZ
@given(raw=st.binary(max_size=2000))
@example(raw=b"")
@example(raw=b"\x00")
@example(raw=b"\xff\xfe")
@example(raw=b"pipeline: x\n\x00")
@example(raw=b"\xef\xbb\xbf")
def test_random_bytes(spec_dir, raw):
    check_bytes(spec_dir, raw)


# (b) random text -------------------------------------------------------------------------------------

@FUZZ
@given(text=st.text(max_size=500))
def test_random_text(spec_dir, text):
    check_bytes(spec_dir, text.encode("utf-8", errors="surrogatepass"))


YAML_ALPHABET = list(" :-[]{},#&*!|>'\"?%@`~\n\t") + list(string.ascii_lowercase[:6]) + list("019.+_/")


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(YAML_ALPHABET), max_size=300))
@example(text="a: &a [*a]")
@example(text="<<: {}")
@example(text="- - - -")
@example(text="? - a\n: b")
@example(text="pipeline: !x")
@example(text="a: &x k\n? *x\n: 2")
def test_random_yaml_punctuation(spec_dir, text):
    check_bytes(spec_dir, text.encode())


# (c) mutations of the example specs ----------------------------------------------------------------

NOISE = list(" :-[]{},#&*!|>'\"\t%@") + ["\u00e9", "\u2603", "\x7f"]

op_strategy = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 200)),
    st.tuples(st.just("duplicate"), st.integers(0, 200)),
    st.tuples(st.just("swap"), st.integers(0, 200), st.integers(0, 200)),
    st.tuples(st.just("insert"), st.integers(0, 200), st.integers(0, 200),
              st.text(alphabet=st.sampled_from(NOISE), min_size=1, max_size=3)),
    st.tuples(st.just("indent"), st.integers(0, 200), st.integers(1, 4)),
    st.tuples(st.just("dedent"), st.integers(0, 200)),
)


def mutate(text: str, ops: list[tuple]) -> str:
    lines = text.splitlines()
    for op in ops:
        if not lines:
            lines = [""]
        i = op[1] % len(lines)
        if op[0] == "delete":
            del lines[i]
        elif op[0] == "duplicate":
            lines.insert(i, lines[i])
        elif op[0] == "swap":
            j = op[2] % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op[0] == "insert":
            at = op[2] % (len(lines[i]) + 1)
            lines[i] = lines[i][:at] + op[3] + lines[i][at:]
        elif op[0] == "indent":
            lines[i] = " " * op[2] + lines[i]
        elif op[0] == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i].lstrip(" ")
    return "\n".join(lines) + "\n"


def _line_index(name: str, startswith: str) -> int:
    return next(i for i, line in enumerate(EXAMPLES[name].splitlines()) if line.strip().startswith(startswith))


@FUZZ
@given(name=st.sampled_from(sorted(EXAMPLES)), ops=st.lists(op_strategy, min_size=1, max_size=4))
# The `extends:` line gone: every inherited default disappears.
@example(name="user_feedback.yaml", ops=[("delete", _line_index("user_feedback.yaml", "extends:"))])
# A section header indented under the previous section.
@example(name="churn.yaml", ops=[("indent", _line_index("churn.yaml", "inference:"), 2)])
def test_mutated_example_specs(spec_dir, name, ops):
    check_bytes(spec_dir, mutate(EXAMPLES[name], ops).encode())


@FUZZ
@given(name=st.sampled_from(sorted(TEMPLATES)), ops=st.lists(op_strategy, min_size=1, max_size=3))
def test_mutated_templates_through_a_spec(spec_dir, name, ops):
    """A broken template reaches the checker through `extends:`; errors point into it."""
    target = spec_dir / "templates" / f"mutated_{name}"
    target.write_text(mutate(TEMPLATES[name], ops), encoding="utf-8")
    spec = (f"pipeline: uses_mutated\nextends: templates/mutated_{name}\n"
            "data:\n  sources:\n    - {name: raw, type: local, path: data/, format: csv}\n"
            "  publishes: s3://bucket/uses_mutated/\n")
    check_bytes(spec_dir, spec.encode())
    result = check_file(target)  # and the template on its own, as `pipespec check` does
    assert result.is_template
    assert_allowed_outcome(result, target)


def test_mutations_change_the_input():
    """Guard against a mutator that silently does nothing."""
    text = EXAMPLES["churn.yaml"]
    assert mutate(text, [("delete", 3)]).count("\n") == text.count("\n") - 1
    assert mutate(text, [("indent", 3, 2)]).splitlines()[3] == "  " + text.splitlines()[3]
    assert mutate(text, [("insert", 3, 0, "#")]).splitlines()[3] == "#" + text.splitlines()[3]
    indented = _line_index("churn.yaml", "sources:")
    assert mutate(text, [("dedent", indented)]).splitlines()[indented] == text.splitlines()[indented][2:]
    assert mutate(text, [("swap", 3, 4)]).splitlines()[3:5] == text.splitlines()[4:2:-1]


# (d) random spec-shaped trees: right keys, wrong shapes ---------------------------------------------

WORDS = ["full", "shadow", "canary", "approval", "s3://a/b/", "model://p", "", "union", "inner", "local",
         "anyscale", "kubernetes", "@daily", "0 3 * * *", "rmse", "f1", "dedupe", "drop_empty", "type", "on",
         "all", "any", "failure", "promoted", "keras_text_classifier", "llm_finetune", "anyscale_service",
         "5m", "percent", "cron", "assets", "sources", "name", "tags+", "password"]
leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False, allow_infinity=False,
                                                                          width=32), st.sampled_from(WORDS))
tree = st.recursive(leaf, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(WORDS), children, max_size=3)), max_leaves=12)
SECTIONS = ["pipeline", "description", "tags", "external_assets", "data", "train", "evaluate", "rollout",
            "retries", "alerts", "inference", "extends"]


@FUZZ
@given(base=st.sampled_from(sorted(EXAMPLES)), section=st.sampled_from(SECTIONS), value=tree)
def test_spec_sections_replaced_by_random_trees(spec_dir, base, section, value):
    doc = yaml.safe_load(EXAMPLES[base])
    doc[section] = value
    check_bytes(spec_dir, yaml.safe_dump(doc, sort_keys=False).encode())


def test_empty_extends_list(spec_dir):
    """`extends: []` inherits nothing; it must not crash the checker."""
    check_bytes(spec_dir, b"pipeline: no_parents\nextends: []\n"
                          b"data:\n  sources:\n    - {name: raw, type: local, path: data/, format: csv}\n"
                          b"  publishes: s3://bucket/no_parents/\n")
