"""Readers for folders and archives of images and text documents (seeds 001 and 002).

Seed 001 waits for a `.tgz` of labelled JPEGs; seed 002 ingests folders of `.txt` and `.md`
files. Both become Arrow rows like every other source, in bounded batches:

- images: `path`, `label`, `image` (grayscale pixels in [0, 1], `size`×`size`, row-major, the
  shape pipespec's image classifier reads). The label is the name of the folder the file is in
  (`normal/0001.jpg` → `normal`), or the manifest's entry for the file when one is given.
- documents: `path`, `label` (the folder name; empty at the top), `text`.

Archives are read member by member from the stream (`.tgz`/`.tar.gz` as a stream; `.zip`
needs a seekable file) and never unpacked to disk, so a member named `../../etc/passwd` is a
name, not a place. Only regular files count; links and devices are skipped. A file that
cannot be decoded is a bad row (`<archive>!<member>` and why, never its bytes), handled by
the source's `on_bad_rows` like a malformed CSV line.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from pipespec.tasklib.data.readers import BATCH_ROWS, BadRows

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
TEXT_SUFFIXES = (".txt", ".md")
MAX_MEMBER_BYTES = 64 << 20   # one image or document; a bigger member is a bad row, not an out-of-memory
MAX_ARCHIVE_BYTES = 4 << 30    # all members of one archive, decompressed: a zip/tar bomb stops here
BATCH_BYTES = 64 << 20         # a batch of documents is flushed at this size, whatever its row count
MAX_IMAGE_PIXELS = 50_000_000  # decompression bombs: Pillow refuses images above this


class ArchiveTooLarge(ValueError):
    """An archive decompresses to more than MAX_ARCHIVE_BYTES: refused as a whole (a bomb or a mistake)."""


def members(stream: BinaryIO, origin: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file in an archive (by its suffix) or of a single file."""
    name, total = origin.lower(), 0

    def counted(size: int) -> None:
        nonlocal total
        total += size
        if total > MAX_ARCHIVE_BYTES:
            raise ArchiveTooLarge(f"{origin}: decompresses to more than {MAX_ARCHIVE_BYTES >> 30} GiB; refused")

    if name.endswith((".tgz", ".tar.gz", ".tar")):
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                if member.isfile() and member.size <= MAX_MEMBER_BYTES:
                    counted(member.size)
                    yield member.name, archive.extractfile(member).read()  # type: ignore[union-attr]
                elif member.isfile():
                    yield member.name, b""  # reported as bad by the reader: too big to read
    elif name.endswith(".zip"):
        with zipfile.ZipFile(stream) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    if info.file_size > MAX_MEMBER_BYTES:
                        yield info.filename, b""
                        continue
                    counted(info.file_size)
                    data = archive.read(info)
                    counted(len(data) - info.file_size)  # a header that lies about the size
                    yield info.filename, data
    else:  # a single file: its path, so its folder still names its label
        yield origin.split("://", 1)[-1], stream.read(MAX_MEMBER_BYTES + 1)


ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")
SUFFIXES = {"images": IMAGE_SUFFIXES + ARCHIVE_SUFFIXES, "documents": TEXT_SUFFIXES + ARCHIVE_SUFFIXES}


def read_files(fmt: str, stream: BinaryIO, origin: str, bad_rows: BadRows, *, image_size: int = 32,
               manifest: Mapping[str, str] | None = None) -> Iterator[Any]:
    """One listed file of an `images` or `documents` source (a single file or an archive) → Arrow batches."""
    files = members(stream, origin)
    if fmt == "images":
        return read_images(files, origin, bad_rows, size=image_size, manifest=manifest)
    return read_documents(files, origin, bad_rows)


def folder_label(path: str) -> str:
    """The label a file's folder gives it: its parent folder's name (empty at the top)."""
    parent = PurePosixPath(path).parent.name
    return parent


def read_images(files: Iterable[tuple[str, bytes]], origin: str, bad_rows: BadRows, *, size: int = 32,
                manifest: Mapping[str, str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """Image files → Arrow batches of (`path`, `label`, `image`)."""
    rows: list[dict] = []
    for path, data in files:
        if not path.lower().endswith(IMAGE_SUFFIXES):
            continue
        where = f"{origin}!{path}" if origin != path else origin
        label = manifest.get(path) if manifest is not None else folder_label(path)
        if not label:
            bad_rows.reject(where, None, "no label: put the file in a folder named after its class, or list it "
                                         "in the manifest")
            continue
        pixels = _pixels(data, size)
        if isinstance(pixels, str):
            bad_rows.reject(where, None, pixels)
            continue
        rows.append({"path": path, "label": label, "image": pixels})
        if len(rows) >= batch_rows:
            yield _table(rows, image=True)
            rows = []
    if rows:
        yield _table(rows, image=True)


def read_documents(files: Iterable[tuple[str, bytes]], origin: str, bad_rows: BadRows, *,
                   batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """Text and Markdown files → Arrow batches of (`path`, `label`, `text`), at most `batch_rows` rows
    or BATCH_BYTES of text each."""
    rows: list[dict] = []
    size = 0
    for path, data in files:
        if not path.lower().endswith(TEXT_SUFFIXES):
            continue
        where = f"{origin}!{path}" if origin != path else origin
        if len(data) > MAX_MEMBER_BYTES:
            bad_rows.reject(where, None, f"larger than {MAX_MEMBER_BYTES >> 20} MiB")
            continue
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            bad_rows.reject(where, None, f"not UTF-8 text ({error.reason} at byte {error.start})")
            continue
        rows.append({"path": path, "label": folder_label(path), "text": text})
        size += len(data)
        if len(rows) >= batch_rows or size >= BATCH_BYTES:
            yield _table(rows, image=False)
            rows, size = [], 0
    if rows:
        yield _table(rows, image=False)


def _pixels(data: bytes, size: int) -> list[float] | str:
    """Grayscale pixels in [0, 1], resized to size×size; a reason string when the bytes are no image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not data or len(data) > MAX_MEMBER_BYTES:
        return f"empty or larger than {MAX_MEMBER_BYTES >> 20} MiB"
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L").resize((size, size))
            return (np.asarray(image, dtype=np.float32) / 255.0).ravel().tolist()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        return f"not a readable image ({type(error).__name__})"


def _table(rows: list[dict], image: bool) -> Any:
    import pyarrow as pa

    value = ("image", pa.list_(pa.float32())) if image else ("text", pa.string())
    schema = pa.schema([("path", pa.string()), ("label", pa.string()), value])
    return pa.Table.from_pylist(rows, schema=schema)
