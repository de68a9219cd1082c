"""The YAML loader treats a spec as data: hostile or broken input ends in a
`SpecError` with a position and a message, never in code execution, a hang,
a crash or a silently different value."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipespec.schemas.diagnostics import SpecError
from pipespec.schemas.yamlload import MAX_BYTES, MAX_DEPTH, MAX_NODES, Node, load_bytes, load_file

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is


def error_of(raw: bytes, name: str = "spec.yaml", **kw):
    with pytest.raises(SpecError) as info:
        load_bytes(raw, name, **kw)
    d = info.value.diagnostic
    assert d.file == name
    assert d.code == "yaml"
    assert d.severity == "error"
    assert d.line >= 1 and d.col >= 1
    assert d.hint, "every loader error tells the user what to do"
    assert str(info.value) == d.message
    return d


def where(d) -> tuple[int, int]:
    return d.line, d.col


# --- tags: data only, nothing ever constructed -------------------------------------------------

@pytest.mark.parametrize("raw, pos, tag", [
    (b"pipeline: x\nobj: !!python/object/apply:os.system ['echo pwned']\n", (2, 6), "!!python/object/apply:os.system"),
    (b"pipeline: x\nfn: !!python/name:os.system\n", (2, 5), "!!python/name:os.system"),
    (b"pipeline: x\nmod: !!python/module:os\n", (2, 6), "!!python/module:os"),
])
def test_python_tags_are_rejected(raw, pos, tag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = error_of(raw)
    assert where(d) == pos
    assert d.message == f"YAML tag `{tag}` is not allowed"
    assert "remove the tag" in d.hint
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("raw, pos, tag", [
    (b"pipeline: x\npassword: !secret db_password\n", (2, 11), "!secret"),
    (b"pipeline: x\nitems: !list [1, 2]\n", (2, 8), "!list"),
    (b"pipeline: x\nref: !Ref {a: 1}\n", (2, 6), "!Ref"),
    (b"pipeline: x\nval: !!set {a, b}\n", (2, 6), "!!set"),
    (b"pipeline: x\nval: !!binary aGVsbG8=\n", (2, 6), "!!binary"),
    (b"pipeline: x\nwhen: !!timestamp 2024-01-01\n", (2, 7), "!!timestamp"),
    (b"!!omap\n- pipeline: x\n", (1, 1), "!!omap"),
])
def test_custom_and_non_json_tags_are_rejected(raw, pos, tag):
    d = error_of(raw)
    assert where(d) == pos
    assert d.message == f"YAML tag `{tag}` is not allowed"


def test_explicit_core_tags_are_values_not_code():
    node = load_bytes(b"a: !!str 123\nb: !!int '7'\nc: !!float '1.5'\n", "s.yaml")
    assert node.to_plain() == {"a": "123", "b": 7, "c": 1.5}


@pytest.mark.parametrize("raw, pos, message", [
    # YAML 1.2 has no `yes`: it must not silently become false.
    (b"pipeline: x\nonly_new: !!bool yes\n", (2, 11), "`yes` is not a valid !!bool"),
    (b"pipeline: x\nowner: !!null team\n", (2, 8), "`team` is not a valid !!null"),
], ids=["bool", "null"])
def test_explicit_bool_and_null_tags_check_their_text(raw, pos, message):
    d = error_of(raw)
    assert where(d) == pos
    assert d.message == message


def test_explicit_int_tag_on_a_word_is_an_error():
    d = error_of(b"pipeline: x\ncount: !!int many\n")
    assert where(d) == (2, 8)
    assert d.message == "`many` is not a valid !!int"
    assert "quote it" in d.hint


# --- keys ----------------------------------------------------------------------------------------

def test_duplicate_top_level_key():
    d = error_of(b"pipeline: x\nowner: a\nowner: b\n")
    assert where(d) == (3, 1)
    assert d.message == "duplicate key `owner` (first defined on line 2)"
    assert "silently keep only the last" in d.hint


def test_duplicate_nested_key_in_flow_mapping():
    d = error_of(b"pipeline: x\ndata:\n  sources: []\n  threshold: {min_records: 1, min_records: 2}\n")
    assert where(d) == (4, 31)
    assert d.message == "duplicate key `min_records` (first defined on line 4)"


def test_merge_keys_are_rejected():
    d = error_of(b"defaults: &d {owner: a}\npipeline: x\nother:\n  <<: *d\n  tags: []\n")
    assert where(d) == (4, 3)
    assert d.message == "YAML merge keys (`<<`) are not supported"
    assert "extends:" in d.hint


def test_quoted_merge_key_is_just_a_string():
    assert load_bytes(b"'<<': 1\n", "s.yaml").to_plain() == {"<<": 1}


def test_complex_keys_are_rejected():
    d = error_of(b"? [a, b]\n: 1\n")
    assert where(d) == (1, 3)
    assert d.message == "mapping keys must be plain strings"


@pytest.mark.parametrize("raw, alias_at", [
    (b"pipeline: &x aliased\n*x : 2\n", (2, 1)),
    (b"pipeline: &x aliased\n? *x\n: 2\n", (2, 3)),
], ids=["implicit-key", "explicit-key"])
def test_alias_as_key_is_rejected_or_resolved(raw, alias_at):
    """An aliased key either resolves to the anchored text or is an error at the alias; never a `None` key."""
    try:
        node = load_bytes(raw, "s.yaml")
    except SpecError as exc:
        assert where(exc.diagnostic) == alias_at
        assert "key" in exc.diagnostic.message
    else:
        assert node.to_plain() == {"pipeline": "aliased", "aliased": 2}


def test_keys_are_the_text_as_written():
    node = load_bytes(b"1: a\nnull: b\non: c\ntrue: d\n", "s.yaml")
    assert list(node.value) == ["1", "null", "on", "true"]


# --- size, depth and expansion limits ------------------------------------------------------------

def _billion_laughs() -> bytes:
    lines = [b'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        refs = ", ".join([f"*{prev}"] * 9)
        lines.append(f"{name}: &{name} [{refs}]".encode())
    return b"\n".join(lines) + b"\n"


def test_billion_laughs_is_stopped():
    raw = _billion_laughs()
    d = error_of(raw)
    assert d.message == f"document expands to more than {MAX_NODES:,} values (an alias bomb?)"
    assert "alias" in d.hint
    # The position is one of the expanded values, so on a line of the file.
    assert 1 <= d.line <= raw.count(b"\n")
    assert d.col <= len(raw.splitlines()[d.line - 1])


def test_reused_anchors_below_the_limit_are_fine():
    node = load_bytes(b"a: &x [1, 2]\nb: *x\nc: {k: *x}\n", "s.yaml")
    assert node.to_plain() == {"a": [1, 2], "b": [1, 2], "c": {"k": [1, 2]}}
    # Every use keeps the position of the anchored value.
    assert (node.value["b"].loc.line, node.value["b"].loc.col) == (1, 4)


# The diagnostic may point at the anchored value or at the alias that loops back into it.
@pytest.mark.parametrize("raw, anchored, alias", [
    (b"a: &a [*a]\n", (1, 4), (1, 8)),
    (b"a: &a {b: *a}\n", (1, 4), (1, 11)),
    (b"pipeline: x\nloop: &l\n  - 1\n  - *l\n", (2, 7), (4, 5)),
])
def test_recursive_alias(raw, anchored, alias):
    d = error_of(raw)
    assert where(d) in (anchored, alias)
    assert d.message == "recursive alias: a value contains itself"


def test_undefined_alias():
    d = error_of(b"pipeline: *nope\n")
    assert where(d) == (1, 11)
    assert "undefined alias" in d.message
    assert "&anchor" in d.hint


def past_the_limit(first_col: int, step: int, root_is_opener: bool) -> set[tuple[int, int]]:
    """Columns of the openers just past MAX_DEPTH levels (the document root is level 1).

    The first opener past the limit is reported; whether a limit of 64 allows the
    64th or the 65th level is left to the loader, so either of the two is accepted.
    """
    first_level = 1 if root_is_opener else 2
    return {(1, first_col + step * (level - first_level)) for level in (MAX_DEPTH + 1, MAX_DEPTH + 2)}


@pytest.mark.parametrize("raw, allowed", [
    (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", past_the_limit(4, 1, root_is_opener=False)),
    (b"a: " + b"{a: " * 5000 + b"1" + b"}" * 5000 + b"\n", past_the_limit(4, 4, root_is_opener=False)),
    (b"- " * 5000 + b"x\n", past_the_limit(1, 2, root_is_opener=True)),
], ids=["flow-lists", "flow-mappings", "block-lists"])
def test_deep_nesting_5000(raw, allowed):
    d = error_of(raw)
    assert where(d) in allowed
    assert d.message == f"document is nested too deeply (limit {MAX_DEPTH} levels)"
    assert d.hint == "flatten the structure"


def _levels(value) -> int:
    depth = 1
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    return depth


def test_depth_limit_boundary():
    # MAX_DEPTH levels counting the root mapping: always fine.
    ok = b"a: " + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"\n"
    assert 1 + _levels(load_bytes(ok, "s.yaml").to_plain()["a"]) == MAX_DEPTH
    # Two levels more: always too deep.
    too_deep = b"a: " + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"\n"
    d = error_of(too_deep)
    assert where(d) in past_the_limit(4, 1, root_is_opener=False)


@pytest.mark.parametrize("raw", [
    b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    b"- " * 100_000 + b"x\n",
], ids=["flow-lists-100k", "block-lists-100k"])
def test_very_deep_nesting_within_the_size_limit_is_a_diagnostic_not_a_crash(raw, tmp_path):
    """Far below MAX_BYTES, yet deep enough to overflow a recursive composer."""
    assert len(raw) < MAX_BYTES
    spec = tmp_path / "deep.yaml"
    spec.write_bytes(raw)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from pipespec.schemas.diagnostics import SpecError
        from pipespec.schemas.yamlload import load_file
        try:
            load_file(Path({str(spec)!r}), "deep.yaml")
        except SpecError as exc:
            print("SPECERROR", exc.diagnostic.line, exc.diagnostic.col, exc.diagnostic.message)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"the loader crashed the interpreter (exit {proc.returncode}): {proc.stderr[-500:]}"
    assert f"nested too deeply (limit {MAX_DEPTH} levels)" in proc.stdout


def test_size_limit_in_memory():
    d = error_of(b"a: b\n" * 10, max_bytes=40)
    assert where(d) == (1, 1)
    assert d.message == "file is 50 bytes; specs are limited to 40 bytes"
    assert "split the pipeline" in d.hint


def test_size_limit_default_is_one_mebibyte():
    raw = b"k: " + b"x" * MAX_BYTES + b"\n"
    d = error_of(raw)
    assert d.message == f"file is {len(raw):,} bytes; specs are limited to 1,048,576 bytes"


def test_size_limit_on_disk_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"pipeline: x\n" + b"# padding\n" * 200)
    with pytest.raises(SpecError) as info:
        load_file(path, "big.yaml", max_bytes=1000)
    d = info.value.diagnostic
    assert (d.file, d.line, d.col) == ("big.yaml", 1, 1)
    assert d.message == f"file is {path.stat().st_size:,} bytes; specs are limited to 1,000 bytes"


# --- document shape -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, pos, kind", [
    (b"- a\n- b\n", (1, 1), "a list"),
    (b"just a string\n", (1, 1), "a single value"),
    (b"# comment\n\n42\n", (3, 1), "a single value"),
])
def test_document_must_be_a_mapping(raw, pos, kind):
    d = error_of(raw)
    assert where(d) == pos
    assert d.message == f"a spec must be a mapping, but this document is {kind}"
    assert "pipeline: <name>" in d.hint


# The diagnostic may point at the `---` that starts the second document or at its content.
@pytest.mark.parametrize("raw, separator, content", [
    (b"pipeline: a\n---\npipeline: b\n", (2, 1), (3, 1)),
    (b"---\npipeline: a\n---\n- b\n", (3, 1), (4, 1)),
])
def test_multiple_documents(raw, separator, content):
    d = error_of(raw)
    assert where(d) in (separator, content)
    assert d.message == "the file holds more than one YAML document"
    assert "`---`" in d.hint


def test_single_explicit_document_is_fine():
    assert load_bytes(b"---\npipeline: a\n...\n", "s.yaml").to_plain() == {"pipeline": "a"}


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"# only a comment\n", b"\xef\xbb\xbf"])
def test_empty_file(raw):
    d = error_of(raw)
    assert where(d) == (1, 1)
    assert d.message == "the file is empty"


# --- bytes and encodings -------------------------------------------------------------------------

def test_nul_bytes():
    d = error_of(b"pipeline: x\nowner: a\x00b\n")
    assert where(d) == (2, 9)
    assert d.message == "file contains NUL bytes: it looks binary, not YAML"


def test_invalid_utf8():
    d = error_of(b"pipeline: x\nowner: caf\xe9\n")
    assert where(d) == (2, 11)
    assert d.message == "file is not valid UTF-8 (byte 0xe9)"
    assert "UTF-8" in d.hint


def test_utf16_file_is_rejected_not_misread():
    d = error_of("pipeline: x\n".encode("utf-16"))
    assert where(d) == (1, 4)  # BOM ff fe, then `p` 00
    assert d.message == "file contains NUL bytes: it looks binary, not YAML"


def test_utf8_bom_and_crlf_are_accepted():
    node = load_bytes(b"\xef\xbb\xbfpipeline: x\r\nowner: y\r\n", "s.yaml")
    assert node.to_plain() == {"pipeline": "x", "owner": "y"}
    assert (node.value["owner"].loc.line, node.value["owner"].loc.col) == (2, 8)


def test_non_ascii_text_keeps_character_columns():
    node = load_bytes("description: café ☕\nowner: ü\n".encode(), "s.yaml")
    assert node.value["description"].value == "café ☕"
    assert (node.value["owner"].loc.line, node.value["owner"].loc.col) == (2, 8)


def test_tab_indentation():
    d = error_of(b"pipeline: x\ndata:\n\tpublishes: s3://a/\n")
    assert where(d) == (3, 1)
    assert d.message.startswith("invalid YAML: found character that cannot start any token")
    assert "tab" in d.hint and "spaces" in d.hint


def test_tabs_inside_values_are_fine():
    assert load_bytes(b"a: x\ty\n", "s.yaml").value["a"].value == "x\ty"


@pytest.mark.parametrize("raw, pos, problem, hint", [
    (b"pipeline: [a, b\n", (2, 1), "expected ',' or ']'", "not closed with `]`"),
    (b"pipeline: {a: b\n", (2, 1), "expected ',' or '}'", "not closed with `}`"),
    (b"pipeline: x\nowner: a: b\n", (2, 9), "mapping values are not allowed", "needs quotes"),
    (b"pipeline: 'x\n", (2, 1), "found unexpected end of stream", "not closed"),
])
def test_syntax_errors(raw, pos, problem, hint):
    d = error_of(raw)
    assert where(d) == pos
    assert d.message.startswith("invalid YAML: ")
    assert problem in d.message
    assert hint in d.hint


def test_unreadable_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_file(tmp_path / "missing.yaml", "missing.yaml")
    d = info.value.diagnostic
    assert (d.file, d.line, d.col) == ("missing.yaml", 1, 1)
    assert d.message.startswith("cannot read file:")
    with pytest.raises(SpecError) as info:
        load_file(tmp_path)
    assert info.value.diagnostic.message.startswith("cannot read file:")


# --- YAML 1.2 scalars ----------------------------------------------------------------------------

def test_yaml12_booleans():
    node = load_bytes(b"on: true\ncountry: no\nanswer: yes\nswitch: off\nx: True\ny: FALSE\nz: y\n", "s.yaml")
    plain = node.to_plain()
    assert list(plain) == ["on", "country", "answer", "switch", "x", "y", "z"]
    assert plain["on"] is True
    assert plain["country"] == "no"
    assert plain["answer"] == "yes"
    assert plain["switch"] == "off"
    assert plain["x"] is True and plain["y"] is False
    assert plain["z"] == "y"


def test_alert_on_key_stays_on():
    node = load_bytes(b"alerts:\n  - on: [failure]\n    slack: {channel: x}\n", "s.yaml")
    alert = node.value["alerts"].value[0]
    assert list(alert.value) == ["on", "slack"]
    assert (alert.value["on"].key_loc.line, alert.value["on"].key_loc.col) == (2, 5)


def test_dates_and_times_stay_strings():
    plain = load_bytes(b"d: 2024-01-01\nt: 2024-01-01T10:00:00Z\nclock: 12:30\n", "s.yaml").to_plain()
    assert plain == {"d": "2024-01-01", "t": "2024-01-01T10:00:00Z", "clock": "12:30"}


def test_numbers_and_nulls():
    plain = load_bytes(b"a: 10\nb: -3\nc: 1.5\nd: 1e3\ne: .inf\nf: -.inf\ng: .nan\nh: ~\ni: null\nj:\n"
                       b"k: 010\nl: 0x1F\nm: '7'\n", "s.yaml").to_plain()
    assert plain["a"] == 10 and plain["b"] == -3 and plain["c"] == 1.5 and plain["d"] == 1000.0
    assert plain["e"] == math.inf and plain["f"] == -math.inf and math.isnan(plain["g"])
    assert plain["h"] is None and plain["i"] is None and plain["j"] is None
    # Leading zeros and hex stay text (zip codes, ids), quoted numbers stay text.
    assert plain["k"] == "010" and plain["l"] == "0x1F" and plain["m"] == "7"
    assert type(plain["a"]) is int and type(plain["c"]) is float


def test_positions_are_one_based_and_keys_remember_theirs():
    node = load_bytes(b"pipeline: x\ndata:\n  publishes: s3://a/\n", "s.yaml")
    assert isinstance(node, Node)
    assert (node.loc.line, node.loc.col) == (1, 1)
    publishes = node.value["data"].value["publishes"]
    assert (publishes.loc.line, publishes.loc.col) == (3, 14)
    assert (publishes.key_loc.line, publishes.key_loc.col) == (3, 3)
    assert publishes.loc.file == "s.yaml"
