"""`data.extract` with the source's transforms fused in (issue 16): the same rows and the same
bytes as extract followed by one `data.transform` task per transform, the same error rules, and
pyarrow's JSON reader used only where it reads a file exactly as the line-by-line parser does."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.extract import extract
from pipespec.tasklib.data import readers
from pipespec.tasklib.data.readers import BadRows, NotPlainJson, read_jsonl, read_jsonl_arrow
from pipespec.tasklib.data.transform import transform

CTX = RunContext(dag_id="p__data", task_id="extract", run_id="manual__2026-01-02", map_index=0)
TRANSFORMS = [{"dedupe": {"key": ["text"]}}, {"drop_empty": ["text", "label"]},
              {"normalize_text": {"columns": ["text"], "lowercase": True, "strip": True, "collapse_whitespace": True}},
              {"redact_pii": ["text"]}, {"sample": {"fraction": 0.5, "seed": 3}}]


@pytest.fixture(autouse=True)
def work(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPESPEC_STORAGE_ROOT", raising=False)
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def rows(count: int) -> list[dict]:
    texts = ["  Late  PARCEL ", "mail me at ann@example.com", "", "card 4111 1111 1111 1111 please", "ok"]
    return [{"text": texts[i % 5] + ("" if i % 7 else f" #{i}"), "label": None if i % 11 == 0 else "x",
             "n": i} for i in range(count)]


def write_jsonl(path: Path, items: list[dict], extra: str = "") -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in items) + extra)
    return {"name": "feed", "type": "local", "path": os.path.relpath(path), "format": "jsonl"}


def run(source: dict, transforms=None) -> dict:
    return extract(CTX, pipeline="p", spec_dir=".", publishes="s3://unused/x/", source=source, transforms=transforms)


def test_fused_transforms_give_the_bytes_of_one_task_per_transform(work):
    source = write_jsonl(work / "data" / "feed.jsonl", rows(3000))
    fused = run(source, TRANSFORMS)
    fused_table = storage.read_table(fused)
    ref = run(source)  # the same task id: this overwrites the fused output
    for index, spec in enumerate(TRANSFORMS, start=1):
        ctx = RunContext(dag_id="p__data", task_id=f"transform_{index}", run_id="manual__2026-01-02", map_index=0)
        ref = transform(ctx, pipeline="p", transform=spec, ref=ref)
    assert fused["sha256"] == ref["sha256"] and fused["rows"] == ref["rows"] > 0
    assert fused["schema"] == ref["schema"] and fused["source"] == "feed" and fused["files"] == 1
    assert fused_table.equals(storage.read_table(ref))
    assert not any("ann@example.com" in t or "4111" in t for t in fused_table.column("text").to_pylist())


def test_fused_rerun_overwrites_with_the_same_bytes(work):
    source = write_jsonl(work / "data" / "feed.jsonl", rows(500))
    first, second = run(source, TRANSFORMS), run(source, TRANSFORMS)
    assert first["uri"] == second["uri"] and first["sha256"] == second["sha256"]
    leftovers = [p.name for p in Path(storage.filesystem(first["uri"])[1]).parent.iterdir()]
    assert leftovers == ["feed.parquet"]  # written to a temporary name, then moved: nothing else left


def test_fused_transform_errors_name_the_source_and_column(work):
    source = write_jsonl(work / "data" / "feed.jsonl", rows(10))
    with pytest.raises(ValueError, match="source `feed`: transform `drop_empty` names column `txt`.*did you mean `text`"):
        run(source, [{"dedupe": {"key": ["text"]}}, {"drop_empty": ["txt"]}])
    with pytest.raises(ValueError, match="unknown transform"):
        run(source, [{"explode": ["text"]}])


def test_fused_extract_of_an_empty_folder_skips_the_transforms(work):
    (work / "data" / "empty").mkdir(parents=True)
    source = {"name": "feed", "type": "local", "path": "data/empty", "format": "jsonl"}
    out = run(source, TRANSFORMS)
    assert out["rows"] == 0 and out["schema"] == {}


def test_bad_line_is_reported_with_file_and_line_and_no_value(work):
    source = write_jsonl(work / "data" / "feed.jsonl", rows(40), extra='{"text": "hunter2", broken\n')
    with pytest.raises(ValueError) as error:
        run(source, TRANSFORMS)
    assert "data/feed.jsonl:41: malformed JSON" in str(error.value) and "hunter2" not in str(error.value)
    skipped = run({**source, "on_bad_rows": "skip"}, TRANSFORMS[:1])
    assert skipped["bad_rows"] == 1 and skipped["rows"] == len({r["text"] for r in rows(40)})


# --- pyarrow's reader where it reads exactly what json.loads reads --------------

def both(data: bytes) -> tuple[pa.Table | None, pa.Table]:
    """(pyarrow's reading, or None where it refuses; the line parser's reading), each as one table."""
    slow = list(read_jsonl(io.BytesIO(data), "f.jsonl", BadRows("skip")))
    slow_table = pa.concat_tables(slow, promote_options="permissive") if slow else pa.table({})
    try:
        fast = list(read_jsonl_arrow(io.BytesIO(data), "f.jsonl", block_bytes=64))
    except NotPlainJson:
        return None, slow_table
    return (pa.concat_tables(fast, promote_options="permissive") if fast else pa.table({})), slow_table


@pytest.mark.parametrize("data", [
    b'{"a": 1, "b": "x"}\n\n{"a": 2, "b": null}\n',
    b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n',
    b'{"a": {"x": 1, "y": [1, 2]}, "b": true}\n' * 20,
    b"",
    b"\n  \n",
    b'{"a": 1}\n' * 10 + b'{"a": 2.5}\n' * 10,  # blocks of ints, then of floats: widened, as the batches are
    b'{"a": null}\n' * 10 + b'{"a": "x", "b": 1}\n' * 10,  # a column typed later, another one appearing
])
def test_arrow_reader_agrees_with_the_line_parser(data):
    fast, slow = both(data)
    assert fast is not None and fast.equals(slow)


@pytest.mark.parametrize("data", [
    b'{"a": 1, "a": 2}\n',  # json.loads keeps the last value; pyarrow refuses
    b'{"a": "2024-01-01"}\n',  # json.loads keeps text; pyarrow would make it a timestamp
    b'{"a": "\xff"}\n',  # not UTF-8: the line parser reports it; pyarrow would pass it through
    b'{"a": 1}\n' * 10 + b'\xef\xbb\xbf{"a": 2}\n',  # a byte-order mark after the first line is a bad line
    b'{"a": 1}\n[1]\n',
])
def test_arrow_reader_refuses_what_it_would_read_differently(data):
    fast, _ = both(data)
    assert fast is None


def test_a_file_pyarrow_refuses_midway_is_read_again_whole(work, caplog, monkeypatch):
    monkeypatch.setattr(readers, "JSON_BLOCK_BYTES", 1024)  # many blocks: the bad line is in the last one
    source = write_jsonl(work / "data" / "feed.jsonl", [{"a": i} for i in range(2000)], extra="{broken\n")
    with caplog.at_level(logging.INFO, "pipespec.tasklib.data.extract"):
        out = run({**source, "on_bad_rows": "skip"})
    assert "read line by line" in caplog.text and out["bad_rows"] == 1
    table = pq.read_table(storage.filesystem(out["uri"])[1])
    assert table.column("a").to_pylist() == list(range(2000))  # the blocks read before the bad one: not twice


def test_jsonl_blocks_are_cut_at_line_ends(work, monkeypatch):
    monkeypatch.setattr(readers, "JSON_BLOCK_BYTES", 7)  # shorter than a line: lines span blocks
    items = [{"text": "x" * (i % 13), "n": i} for i in range(300)]
    out = run(write_jsonl(work / "data" / "feed.jsonl", items))
    assert pq.read_table(storage.filesystem(out["uri"])[1]).to_pylist() == items


# --- CSV in blocks of whole lines --------------------------------------------------

def test_csv_blocks_keep_types_rows_and_line_numbers(work, monkeypatch):
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 64)  # many blocks, lines spanning reads
    lines = ["text,n"] + [f"row {i},{i}" for i in range(200)]
    lines.insert(150, "broken,1,2")  # line 151 of the file
    path = work / "data" / "feed.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    source = {"name": "feed", "type": "local", "path": "data/feed.csv", "format": "csv"}
    with pytest.raises(ValueError, match=r"data/feed.csv:151: malformed CSV row: expected 2 fields, got 3"):
        run(source)
    out = run({**source, "on_bad_rows": "skip"})
    table = pq.read_table(storage.filesystem(out["uri"])[1])
    assert out["bad_rows"] == 1 and table.schema.field("n").type == pa.int64()
    assert table.column("n").to_pylist() == list(range(200))


def test_csv_conversion_error_in_a_later_block_names_the_file_line(work, monkeypatch):
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 64)
    path = work / "data" / "feed.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(100)) + "secret-value\n")  # line 102
    with pytest.raises(ValueError) as error:
        run({"name": "feed", "type": "local", "path": "data/feed.csv", "format": "csv"})
    assert "Row #102" in str(error.value) and "secret-value" not in str(error.value)


def test_dedupe_reads_the_spooled_pieces_across_blocks_files_and_hash_collisions(work, monkeypatch):
    """A fused `dedupe` reads the extract's own spooled pieces (no second spool): many JSON blocks
    in two files, several hash partitions, and first hashes that collide all keep the first row of each key."""
    import numpy as np

    from pipespec.tasklib.data import row_hash
    from pipespec.tasklib.data import transform as transform_module

    items = rows(2000)
    write_jsonl(work / "data" / "feed" / "a.jsonl", items[:1200])
    source = write_jsonl(work / "data" / "feed" / "b.jsonl", items[1200:])
    source["path"] = os.path.relpath(work / "data" / "feed")
    monkeypatch.setattr(readers, "JSON_BLOCK_BYTES", 4096)  # ~60 pieces
    monkeypatch.setattr(transform_module, "PARTITION_ROWS", 200)
    spooled: list[str] = []
    real_spool = transform_module._spooled
    monkeypatch.setattr(transform_module, "_spooled", lambda *a: spooled.append("spool") or real_spool(*a))
    real_hashes = row_hash.row_hashes  # only the top bits survive: different keys share a first hash
    monkeypatch.setattr(row_hash, "row_hashes", lambda batch, columns: real_hashes(batch, columns) & np.uint64(0xF << 60))

    kept = storage.read_table(run(source, [{"dedupe": {"key": ["text"]}}]))
    seen, expected = set(), []
    for item in items:
        if item["text"] not in seen:
            seen.add(item["text"])
            expected.append(item["n"])
    assert kept.column("n").to_pylist() == expected and spooled == []


def test_check_hashes_are_keyed_by_a_secret_drawn_each_time():
    from pipespec.tasklib.data.row_hash import check_hashes, new_check_key, row_hashes

    table = pa.table({"text": ["a", "b", "a", None, ""], "n": pa.array([1, 2, 1, 3, 3], pa.int64()),
                      "flag": [True, False, True, None, False], "bytes": [b"x", b"y", b"x", None, b""],
                      "ts": pa.array([5, 6, 5, None, 7], pa.timestamp("us"))})
    first_key, second_key = new_check_key(), new_check_key()
    assert first_key != second_key and len(first_key.encode()) == 16
    for columns in (["text"], ["n"], ["flag"], ["bytes"], ["ts"], ["text", "n", "flag", "ts"]):
        public, keyed = row_hashes(table, columns), check_hashes(table, columns, first_key)
        other = check_hashes(table, columns, second_key)
        assert (public != keyed)[[0, 1, 2, 4]].all() and (keyed != other)[[0, 1, 2, 4]].all()  # row 3: nulls
        assert keyed[0] == keyed[2]  # equal rows: equal check hashes
        assert len(set(keyed.tolist())) == len({tuple(r[c] for c in columns) for r in table.to_pylist()})


def test_rows_crafted_to_share_the_public_hash_are_all_kept():
    """The public row hash's integer mix is invertible: a data author can make any number of different
    (a, b) rows share it. dedupe must keep every one of them."""
    import numpy as np
    import pandas as pd

    from pipespec.tasklib.data import row_hash

    full = (1 << 64) - 1

    def mix(x: int) -> int:
        return int(pd.util.hash_array(np.array([x], dtype=np.uint64), categorize=False)[0])

    def unshift(y: int, s: int) -> int:
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x & full

    def unmix(y: int) -> int:
        y = unshift(y, 31) * pow(0x94D049BB133111EB, -1, 1 << 64) & full
        y = unshift(y, 27) * pow(0xBF58476D1CE4E5B9, -1, 1 << 64) & full
        return unshift(y, 30)

    target, rows_ = 0x1234, []
    for a in range(1, 6):
        b = unmix(target ^ (mix(a) * row_hash._MULTIPLIER & full))
        rows_.append({"a": a, "b": b - (1 << 64) if b >= 1 << 63 else b, "text": f"row {a}"})
    table = pa.Table.from_pylist(rows_, pa.schema([("a", pa.int64()), ("b", pa.int64()), ("text", pa.string())]))
    assert len(set(row_hash.row_hashes(table, ["a", "b"]).tolist())) == 1  # the crafted collision
    path = Path("data") / "crafted.parquet"
    path.parent.mkdir(exist_ok=True)
    pq.write_table(table, path)
    source = {"name": "feed", "type": "local", "path": str(path), "format": "parquet"}
    kept = storage.read_table(run(source, [{"dedupe": {"key": ["a", "b"]}}]))
    assert kept.column("a").to_pylist() == [1, 2, 3, 4, 5]
