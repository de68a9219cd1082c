"""The rows a model trains and is judged on.

- The training data is the last complete publication of the dataset Asset
  (`pipespec.tasklib.published`), never a half-written one.
- Rows missing a feature or the label are dropped (and counted in the log).
- The holdout is either a fixed set (`evaluate.holdout`: a published Asset, a
  Parquet file or a folder of them) or a split of the dataset by a salted hash
  of each row's *features*. The hash does not depend on row order, the run or
  the model's seed, so a row stays on the same side across retrains, and
  champion and challenger are judged on the same rows. Hashing features (not
  the label) also keeps duplicates of a text on one side, so a relabelled copy
  cannot leak from training into the holdout.
- With a fixed holdout, dataset rows equal (in features) to a holdout row are
  left out of training for the same reason.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SALT = b"pipespec-holdout-v1"


@dataclass(frozen=True)
class TrainingData:
    """The training rows, the holdout size and the manifest they came from."""

    train: Any  # pyarrow.Table
    holdout_rows: int
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Holdout:
    """The rows a model is judged on, and where they came from."""

    table: Any  # pyarrow.Table
    source: str  # what it is, for the log and the result


def load_published(dataset: str, conn_id: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(table, manifest) of the last publication of `dataset`; a clear error if there is none."""
    from pipespec.tasklib.published import latest
    from pipespec.tasklib.storage import read_table

    published = latest(dataset, conn_id)
    if published is None:
        raise FileNotFoundError(
            f"dataset {dataset}: nothing published yet (no {dataset.rstrip('/')}/_LATEST). "
            "Run the pipeline's data DAG until its threshold gate passes, or point train.dataset at a published Asset.")
    return read_table(published.data, conn_id), published.manifest


def read_holdout(uri: str, conn_id: str | None = None) -> Any:
    """A fixed holdout: a published Asset, else a Parquet file or a folder of Parquet files."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    from pipespec.tasklib.published import latest
    from pipespec.tasklib.storage import filesystem, read_table

    published = latest(uri, conn_id)
    if published is not None:
        return read_table(published.data, conn_id)
    filesystem_, path = filesystem(uri, conn_id)
    info = filesystem_.get_file_info(path)
    if info.type == fs.FileType.File:
        files = [path]
    elif info.type == fs.FileType.Directory:
        found = filesystem_.get_file_info(fs.FileSelector(path, recursive=True))
        files = sorted(f.path for f in found if f.type == fs.FileType.File and f.path.endswith(".parquet")
                       and not any(part.startswith((".", "_")) for part in f.path[len(path):].split("/")))
    else:
        files = []
    if not files:
        raise FileNotFoundError(f"holdout {uri}: nothing published there and no Parquet file or folder of "
                                "Parquet files found")
    return ds.dataset(files, filesystem=filesystem_, format="parquet").to_table()


def usable_rows(table: Any, model: dict[str, Any], source: str, keep_other_columns: bool = False) -> Any:
    """The rows that have every feature and the label; a clear error for a missing column."""
    import pyarrow.compute as pc

    columns = [*model["features"], model["label"]]
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise KeyError(f"{source}: no column {', '.join(f'`{c}`' for c in missing)} "
                       f"(it has {', '.join(table.column_names)}); check train.model.features and train.model.label")
    if not keep_other_columns:
        table = table.select(columns)
    valid = pc.is_valid(table.column(columns[0]))
    for column in columns[1:]:
        valid = pc.and_(valid, pc.is_valid(table.column(column)))
    kept = table.filter(valid)
    dropped = table.num_rows - kept.num_rows
    if dropped:
        log.info("%s: dropped %d of %d rows with an empty feature or label", source, dropped, table.num_rows)
    return kept


def row_keys(table: Any, features: list[str]) -> np.ndarray:
    """A 64-bit salted hash of each row's feature values, independent of row order."""
    parts = [_value_bytes(table.column(name)) for name in features]
    keys = np.empty(table.num_rows, dtype=np.uint64)
    for i in range(table.num_rows):
        digest = hashlib.blake2b(SALT, digest_size=8)
        for part in parts:
            digest.update(part[i])
            digest.update(b"\x1f")
        keys[i] = int.from_bytes(digest.digest(), "big")
    return keys


def _value_bytes(column: Any) -> list[bytes]:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return [np.asarray(v, dtype=np.float64).tobytes() for v in column.to_numpy(zero_copy_only=False)]
    return [repr(v).encode() for v in column.to_pylist()]


def in_holdout(keys: np.ndarray, fraction: float) -> np.ndarray:
    """Rows whose hash falls in the first `fraction` of the 64-bit range."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be between 0 and 1, not {fraction}")
    return keys < np.uint64(int(fraction * 2**64))


def training_data(dataset: str, model: dict[str, Any], holdout: str | None = None,
                  holdout_fraction: float = 0.2, conn_id: str | None = None) -> TrainingData:
    """The training side of the dataset: everything not in the holdout."""
    import pyarrow as pa

    table, manifest = load_published(dataset, conn_id)
    source = f"dataset {dataset} (run {manifest.get('run_id', '?')})"
    table = usable_rows(table, model, source)
    keys = row_keys(table, model["features"])
    if holdout:
        fixed = usable_rows(read_holdout(holdout, conn_id), model, f"holdout {holdout}")
        held_out = np.isin(keys, row_keys(fixed, model["features"]))
        holdout_rows = fixed.num_rows
        if held_out.any():
            log.info("%s: left %d rows that also appear in the holdout out of training", source, int(held_out.sum()))
    else:
        held_out = in_holdout(keys, holdout_fraction)
        holdout_rows = int(held_out.sum())
    train = table.filter(pa.array(~held_out))
    if train.num_rows == 0:
        raise ValueError(f"{source}: no rows left to train on ({table.num_rows} usable rows, "
                         f"{int(held_out.sum())} in the holdout)")
    return TrainingData(train, holdout_rows, manifest)


def holdout_data(dataset: str, model: dict[str, Any], holdout: str | None = None,
                 holdout_fraction: float = 0.2, conn_id: str | None = None) -> Holdout:
    """The rows both champion and challenger are scored on (all columns kept: either may need them)."""
    import pyarrow as pa

    if holdout:
        table = usable_rows(read_holdout(holdout, conn_id), model, f"holdout {holdout}", keep_other_columns=True)
        source = f"holdout {holdout}"
    else:
        table, manifest = load_published(dataset, conn_id)
        source = (f"{holdout_fraction:.0%} split of dataset {dataset} (run {manifest.get('run_id', '?')})")
        table = usable_rows(table, model, source, keep_other_columns=True)
        table = table.filter(pa.array(in_holdout(row_keys(table, model["features"]), holdout_fraction)))
    if table.num_rows == 0:
        raise ValueError(f"{source}: the holdout is empty; publish more data"
                         + ("" if holdout else " or raise evaluate.holdout_fraction"))
    return Holdout(table, source)
