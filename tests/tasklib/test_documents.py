"""Images and documents as sources: archives and folders stream into Arrow rows; a bad file is
reported by its path and never lost or quoted."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from pipespec.tasklib.data.documents import members, read_documents, read_images
from pipespec.tasklib.data.readers import BadRows


def jpeg(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def tgz(files: dict[str, bytes], links: dict[str, str] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    buffer.seek(0)
    return buffer


def test_a_tgz_of_labelled_jpegs_becomes_rows_labelled_by_folder():
    archive = tgz({"xrays/normal/1.jpg": jpeg(10), "xrays/pneumonia/2.jpg": jpeg(240), "xrays/README": b"hi"})
    table = next(read_images(members(archive, "drop/2026-01.tgz"), "drop/2026-01.tgz", BadRows(), size=4))
    rows = table.to_pylist()
    assert [(r["path"], r["label"]) for r in rows] == [("xrays/normal/1.jpg", "normal"),
                                                        ("xrays/pneumonia/2.jpg", "pneumonia")]
    assert len(rows[0]["image"]) == 16
    assert max(rows[0]["image"]) < 0.2 < 0.8 < min(rows[1]["image"])  # pixels in [0, 1], dark vs bright


def test_a_manifest_labels_files_instead_of_folders():
    archive = tgz({"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    table = next(read_images(members(archive, "x.tgz"), "x.tgz", BadRows(), manifest={"a.jpg": "cat", "b.jpg": "dog"}))
    assert table.column("label").to_pylist() == ["cat", "dog"]


def test_a_zip_works_like_a_tgz():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("normal/1.png", jpeg(5))  # the decoder goes by content, not suffix
    buffer.seek(0)
    table = next(read_images(members(buffer, "x.zip"), "x.zip", BadRows()))
    assert table.num_rows == 1 and table.column("label")[0].as_py() == "normal"


def test_a_corrupt_image_fails_with_its_path_or_is_counted_when_skipping():
    secret = b"AKIAIOSFODNN7EXAMPLE not a jpeg"
    files = {"normal/good.jpg": jpeg(1), "normal/bad.jpg": secret}
    with pytest.raises(ValueError) as raised:
        list(read_images(members(tgz(files), "in.tgz"), "in.tgz", BadRows("fail")))
    assert "in.tgz!normal/bad.jpg" in str(raised.value) and "AKIA" not in str(raised.value)
    skipping = BadRows("skip")
    tables = list(read_images(members(tgz(files), "in.tgz"), "in.tgz", skipping))
    assert sum(t.num_rows for t in tables) == 1 and skipping.count == 1


def test_an_unlabelled_image_is_a_bad_row_not_a_silent_empty_label():
    with pytest.raises(ValueError, match="no label"):
        list(read_images(members(tgz({"top.jpg": jpeg(1)}), "in.tgz"), "in.tgz", BadRows()))


def test_links_and_traversal_names_are_never_followed():
    archive = tgz({"../../etc/cls/x.jpg": jpeg(3)}, links={"normal/passwd.jpg": "/etc/passwd"})
    table = next(read_images(members(archive, "in.tgz"), "in.tgz", BadRows()))
    assert table.column("path").to_pylist() == ["../../etc/cls/x.jpg"]  # a name, read from the archive


def test_a_decompression_bomb_is_refused(monkeypatch):
    import pipespec.tasklib.data.documents as documents

    monkeypatch.setattr(documents, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ValueError, match="not a readable image"):
        list(read_images(members(tgz({"n/big.jpg": jpeg(1, size=64)}), "in.tgz"), "in.tgz", BadRows()))


def test_text_and_markdown_documents_with_folder_labels_and_bad_encodings():
    files = {"kb/faq/a.md": "# Returns\nSend it back".encode(), "kb/b.txt": "\ufeffplain".encode(),
             "kb/img.png": b"skip me", "kb/bad.txt": b"\xff\xfe\xfa"}
    skipping = BadRows("skip")
    rows = [r for t in read_documents(members(tgz(files), "kb.tgz"), "kb.tgz", skipping) for r in t.to_pylist()]
    assert rows == [{"path": "kb/faq/a.md", "label": "faq", "text": "# Returns\nSend it back"},
                    {"path": "kb/b.txt", "label": "kb", "text": "plain"}]
    assert skipping.count == 1
    with pytest.raises(ValueError, match=r"kb.tgz!kb/bad.txt: not UTF-8"):
        list(read_documents(members(tgz(files), "kb.tgz"), "kb.tgz", BadRows()))


def test_batches_are_bounded():
    files = {f"n/{i}.txt": b"x" for i in range(10)}
    tables = list(read_documents(members(tgz(files), "k.tgz"), "k.tgz", BadRows(), batch_rows=4))
    assert [t.num_rows for t in tables] == [4, 4, 2]


def test_a_single_image_file_is_labelled_by_its_folder():
    from pipespec.tasklib.data.documents import read_files

    table = next(read_files("images", io.BytesIO(jpeg(9)), "s3://xray/drop/normal/7.jpg", BadRows()))
    assert table.to_pylist()[0]["label"] == "normal"
    table = next(read_files("documents", tgz({"kb/faq/a.md": b"hi"}), "s3://kb/kb.tgz", BadRows()))
    assert table.column("label").to_pylist() == ["faq"]


def test_an_images_source_of_archives_extracts_like_any_source(tmp_path, monkeypatch):
    """Seed 001: a folder that receives .tgz drops of labelled JPEGs, extracted into one Parquet Ref."""
    from pipespec.tasklib.context import RunContext
    from pipespec.tasklib.data.extract import extract
    from pipespec.tasklib.storage import read_table

    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    drops = tmp_path / "spec" / "data" / "drops"
    drops.mkdir(parents=True)
    (drops / "2026-01.tgz").write_bytes(tgz({"normal/1.jpg": jpeg(10), "pneumonia/2.jpg": jpeg(240)}).getvalue())
    (drops / "2026-02.tgz").write_bytes(tgz({"normal/3.jpg": jpeg(20), "notes.txt": b"not an image"}).getvalue())
    ref = extract(RunContext(dag_id="xray__data", task_id="extract", run_id="r1"), pipeline="xray",
                  spec_dir=str(tmp_path / "spec"), publishes="s3://xray/curated/",
                  source={"name": "drops", "type": "local", "path": "data/drops/", "format": "images",
                          "on_bad_rows": "fail"})
    table = read_table(ref)
    assert sorted(zip(table.column("path").to_pylist(), table.column("label").to_pylist())) == [
        ("normal/1.jpg", "normal"), ("normal/3.jpg", "normal"), ("pneumonia/2.jpg", "pneumonia")]


def test_an_archive_bomb_is_refused_and_document_batches_are_bounded_in_bytes(monkeypatch):
    import pipespec.tasklib.data.documents as documents

    monkeypatch.setattr(documents, "MAX_ARCHIVE_BYTES", 3000)
    bomb = tgz({f"kb/{i}.txt": b"a" * 1000 for i in range(5)})  # compresses to almost nothing
    with pytest.raises(documents.ArchiveTooLarge, match="decompresses to more than"):
        list(read_documents(members(bomb, "kb.tgz"), "kb.tgz", BadRows("skip")))
    monkeypatch.setattr(documents, "MAX_ARCHIVE_BYTES", 1 << 30)
    monkeypatch.setattr(documents, "BATCH_BYTES", 2500)
    tables = list(read_documents(members(tgz({f"kb/{i}.txt": b"a" * 1000 for i in range(5)}), "kb.tgz"),
                                 "kb.tgz", BadRows()))
    assert [t.num_rows for t in tables] == [3, 2]
