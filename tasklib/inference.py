"""Batch inference with the champion model: resolve it, split the input into
shards, predict each shard in its own mapped task, publish the results.

- `load_champion` names a registry version (the alias is resolved once per run,
  so every shard of a run uses the same model even if a promotion lands meanwhile).
- `plan_shards` counts rows cheaply (Parquet metadata; a streaming count for
  JSON lines and CSV) and hands out row ranges over the input files in sorted
  order, so every row lands in exactly one shard.
- `predict` downloads the model version once per worker (a cache keyed by
  pipeline and version), adds `prediction` (+ `probability` for classifiers) and
  `model_version` to the shard's rows, and writes Parquet to the run's work area.
- `publish` copies the parts under `<output>/runs/<run>/`, writes the manifest
  and `_SUCCESS`, and switches `_LATEST` last (see pipespec.tasklib.published).

A saved model is the directory pipespec.tasklib.model.keras_models writes (`model.keras`,
`labels.json`, `pipespec.json`); its preprocessing is inside, so raw columns go in.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

from pipespec.tasklib import published, storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.model import registry

log = logging.getLogger(__name__)

EXTENSIONS = {"jsonl": (".jsonl", ".json", ".ndjson"), "csv": (".csv",), "parquet": (".parquet", ".pq")}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # pyarrow detects these from the extension
OUTPUT_COLUMNS = ("prediction", "probability", "model_version")


class NoChampion(PermanentFailure, LookupError):
    """Retrying cannot create a champion: only a train run can."""


# --- steps ------------------------------------------------------------------

def load_champion(ctx: RunContext, *, pipeline: str, alias: str = registry.CHAMPION) -> dict:
    """The model version `alias` points at: {"version", "model_type", "alias", "run_id"}; fails clearly
    (without retries) when there is none yet."""
    version = registry.version_for(pipeline, alias)
    if version is None:
        raise NoChampion(f"pipeline {pipeline} has no `{alias}` model yet: run the train DAG "
                         f"({pipeline}__train) first")
    run_id = registry.client().get_model_version(pipeline, version).run_id
    # Fetched here, once, while plan_shards runs: the predict tasks on this machine then start from
    # the cache, without importing MLflow or downloading the same files side by side.
    meta = json.loads((cached_model_dir(pipeline, str(version), run_id) / "pipespec.json").read_text())
    # The run id travels to every shard, which then finds its cached model without asking MLflow.
    return {"version": version, "model_type": meta.get("model_type"), "alias": alias, "run_id": run_id}


# Every mapped predict task is a fresh process: it imports TensorFlow, Keras and MLflow (~4-7 s on
# a small worker) and loads the model before its first row, then predicts ~50-100k rows a second.
# A shard much smaller than this spends most of its time starting up.
MIN_SHARD_ROWS = 100_000
# The most rows one predict task takes on (it streams them, so this bounds its run time, not memory).
MAX_SHARD_ROWS = 5_000_000


def worker_slots() -> int:
    """How many predict tasks can run at once: `$PIPESPEC_WORKER_SLOTS` (the platform sets it to its
    executor's parallelism), else this machine's CPUs."""
    text = os.environ.get("PIPESPEC_WORKER_SLOTS", "").strip()
    return max(1, int(text)) if text.isdigit() else max(1, os.cpu_count() or 1)


def auto_shard_size(rows: int, slots: int) -> int:
    """One shard per worker slot, so each slot's process imports and loads the model once; never
    under MIN_SHARD_ROWS (a small input stays in one task) nor over MAX_SHARD_ROWS."""
    return min(max(-(-rows // max(slots, 1)), MIN_SHARD_ROWS), MAX_SHARD_ROWS)


def plan_shards(ctx: RunContext, *, input: str, format: str, shard_size: int | None = None) -> list[dict]:
    """Row ranges of at most `shard_size` rows covering the input; [] for an empty input. Without a
    `shard_size`, one shard per worker slot (see auto_shard_size)."""
    if shard_size is not None and shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    files, first = [], 0
    for uri in input_files(input, format):
        rows = count_rows(uri, format)
        if rows:
            files.append({"uri": uri, "first": first, "rows": rows})
        first += rows
    if shard_size is None:
        shard_size = auto_shard_size(first, worker_slots())
    elif shard_size < MIN_SHARD_ROWS and first > shard_size:
        log.warning("pipespec: shard_size %d splits %d rows into %d mapped tasks; each one is a new process that "
                    "spends seconds importing TensorFlow and loading the model before predicting its %d rows in "
                    "a fraction of that. Leave shard_size unset (one shard per worker slot) or use at least %d.",
                    shard_size, first, -(-first // shard_size), shard_size, MIN_SHARD_ROWS)
    shards = []
    for start in range(0, first, shard_size):
        stop = min(start + shard_size, first)
        touched = [f for f in files if f["first"] < stop and f["first"] + f["rows"] > start]
        shards.append({"uri": touched[0]["uri"] if len(touched) == 1 else input, "format": format,
                       "start": start, "stop": stop, "label": f"rows {start}–{stop - 1}", "files": touched})
    log.info("pipespec: %s: %d rows in %d files -> %d shards of <= %d rows",
             input, first, len(files), len(shards), shard_size)
    return shards


def predict(ctx: RunContext, *, pipeline: str, model: dict, shard: dict) -> dict:
    """Score one shard with the champion `load_champion` resolved (loaded once per worker process).

    Returns the predictions' reference (storage.Ref as a dict) plus `label` and `model_version`."""
    version = str(model["version"])
    table = read_shard(shard)
    clash = [c for c in OUTPUT_COLUMNS if c in table.column_names]
    if clash:
        raise ValueError(f"{shard['uri']} ({shard['label']}): input already has column(s) {clash}, "
                         "which inference writes; rename them")
    model_dir = cached_model_dir(pipeline, version, model.get("run_id"))
    columns = predict_table(model_dir, table, where=f"{shard['uri']} ({shard['label']})")
    import pyarrow as pa

    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    table = table.append_column("model_version", pa.array([version] * table.num_rows, pa.string()))
    ref = storage.write_table(table, storage.work_uri(ctx, pipeline, "predictions.parquet"), source=shard["label"])
    return {**ref.to_dict(), "label": shard["label"], "model_version": version}


def publish(ctx: RunContext, *, pipeline: str, output: str, shards: Any) -> dict:
    """All parts under `<output>/runs/<pipeline>/<run>/`, then `_SUCCESS` and the manifest, then `_LATEST`."""
    shards = list(shards or [])
    if not shards:
        return {"uri": None, "rows": 0, "model_version": None}  # nothing predicted: `_LATEST` stays put
    # One producer per Asset: refuse before deleting anything under another pipeline's output.
    published.latest_of(output, pipeline)
    prefix = published.run_prefix(output, ctx.run_key, pipeline)
    target_fs, target_path = storage.filesystem(prefix)
    target_fs.delete_dir_contents(target_path, missing_dir_ok=True)  # a rerun replaces its own parts only
    parts = []
    for index, shard in enumerate(shards):
        uri = f"{prefix}/part-{index:05d}.parquet"
        _copy(shard["uri"], uri)
        parts.append({"uri": uri, "rows": shard["rows"], "sha256": shard["sha256"], "label": shard.get("label")})
    rows = sum(p["rows"] for p in parts)
    versions = sorted({str(s["model_version"]) for s in shards})
    data = storage.Ref(prefix, rows, shards[0]["schema"], _combined_hash(parts), source="predictions")
    published.write_manifest(prefix, {
        "pipeline": pipeline, "asset": output, "run_id": ctx.run_id, "dag_id": ctx.dag_id,
        "model_version": ",".join(versions), "data": data.to_dict(), "parts": parts,
    })
    storage.write_text(f"{prefix}/_SUCCESS", "")
    published.mark_latest(output, prefix)
    return {"uri": prefix, "rows": rows, "model_version": ",".join(versions)}


# --- the model ----------------------------------------------------------------

def model_cache_root() -> Path:
    """Where downloaded models are cached (`$PIPESPEC_MODEL_CACHE` or a temp folder)."""
    return Path(os.environ.get("PIPESPEC_MODEL_CACHE") or Path(tempfile.gettempdir()) / "pipespec-models")


def cached_model_dir(pipeline: str, version: str, run_id: str | None = None) -> Path:
    """The model directory of a version, downloaded at most once per machine (rename makes it atomic).

    Keyed by pipeline, version and the version's run id: a re-created registry reuses version numbers.
    The run id comes from load_champion's result when given (no registry call per shard).
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pipeline)
    run_id = run_id or registry.client().get_model_version(pipeline, version).run_id
    final = model_cache_root() / safe / f"{version}-{run_id}"
    if (final / "pipespec.json").is_file():
        return final
    staging = final.parent / f".download-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        downloaded = registry.download(pipeline, version, staging)
        try:
            downloaded.rename(final)
        except OSError:
            if not (final / "pipespec.json").is_file():  # not a concurrent winner: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


@functools.lru_cache(maxsize=4)
def _loaded(model_dir: str) -> Any:
    """One load per process and version: a worker predicting several shards reuses it."""
    from pipespec.tasklib.model import keras_models

    return keras_models.load(Path(model_dir))


def predict_table(model_dir: Path, table: Any, where: str = "") -> dict[str, list]:
    """The prediction columns for `table`: `prediction`, plus `probability` (of the predicted class) for classifiers.

    The saved model holds its own preprocessing (pipespec.tasklib.model.keras_models), so the raw columns go in.
    """
    from pipespec.tasklib.model import keras_models

    meta = json.loads((model_dir / "pipespec.json").read_text())
    if not (model_dir / "model.keras").is_file():
        raise ValueError(f"model type `{meta.get('model_type')}` has no model.keras to run in batch inference; "
                         "serve it from its rollout target instead")
    missing = [f for f in meta.get("features") or [] if f not in table.column_names]
    if missing:
        raise ValueError(f"{where}: the model needs column(s) {missing}; the input has {table.column_names}")
    loaded = _loaded(str(model_dir))
    classifier = meta.get("task") == "classification"
    if table.num_rows == 0:
        return {"prediction": [], **({"probability": []} if classifier else {})}
    prediction = keras_models.predict(loaded, table)
    columns: dict[str, list] = {"prediction": list(prediction.values)}
    if prediction.scores is not None:
        columns["probability"] = prediction.scores.max(axis=1).astype(float).tolist()
    return columns


# --- reading the input ----------------------------------------------------------

def input_files(uri: str, format: str) -> list[str]:
    """The files of `uri` (one file, or every `format` file under a prefix) in sorted order."""
    from pyarrow import fs

    if format not in EXTENSIONS:
        raise ValueError(f"unsupported inference input format `{format}`: use one of {sorted(EXTENSIONS)}")
    filesystem_, path = storage.filesystem(uri)
    info = filesystem_.get_file_info(path)
    if info.type == fs.FileType.File:
        return [uri]
    if info.type == fs.FileType.NotFound:
        if not uri.endswith("/") and _matches(uri, format):
            raise FileNotFoundError(f"inference input {uri} does not exist")
        log.warning("pipespec: inference input %s has no files yet", uri)
        return []  # an empty prefix: nothing new to predict
    selector = fs.FileSelector(path, recursive=True)
    relative = sorted(i.path[len(path):].lstrip("/") for i in filesystem_.get_file_info(selector)
                      if i.type == fs.FileType.File)
    chosen = [r for r in relative if not any(part[:1] in "._" for part in r.split("/")) and _matches(r, format)]
    if len(chosen) < len(relative):
        log.info("pipespec: %s: skipped %d files that are not %s", uri, len(relative) - len(chosen), format)
    return [f"{uri.rstrip('/')}/{r}" for r in chosen]


def _matches(name: str, format: str) -> bool:
    name = name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return name.endswith(EXTENSIONS[format])


def count_rows(uri: str, format: str) -> int:
    """The number of rows in an input file of this format."""
    filesystem_, path = storage.filesystem(uri)
    if format == "parquet":
        import pyarrow.parquet as pq

        with filesystem_.open_input_file(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    if format == "csv":
        return sum(batch.num_rows for batch in _csv_batches(filesystem_, path, as_text=True))
    return sum(1 for _ in _json_lines(filesystem_, path))


def read_shard(shard: dict) -> Any:
    """The rows [start, stop) of the shard, read only from the files it touches."""
    import pyarrow as pa

    pieces = []
    for file in shard["files"]:
        start = max(shard["start"] - file["first"], 0)
        stop = min(shard["stop"] - file["first"], file["rows"])
        pieces.append(read_rows(file["uri"], shard["format"], start, stop))
    if not pieces:
        return pa.table({})
    return pa.concat_tables(pieces, promote_options="permissive") if len(pieces) > 1 else pieces[0]


def read_rows(uri: str, format: str, start: int, stop: int) -> Any:
    """Rows [start, stop) of one file (0-based, in file order)."""
    import pyarrow as pa

    filesystem_, path = storage.filesystem(uri)
    if format == "parquet":
        import pyarrow.parquet as pq

        with filesystem_.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            groups, offset, first_row = [], 0, None
            for index in range(parquet.num_row_groups):
                size = parquet.metadata.row_group(index).num_rows
                if offset < stop and offset + size > start:
                    groups.append(index)
                    first_row = offset if first_row is None else first_row
                offset += size
            table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
        return table.slice(start - (first_row or 0), stop - start)
    if format == "csv":
        batches, offset = [], 0
        for batch in _csv_batches(filesystem_, path):
            if offset + batch.num_rows > start and offset < stop:
                batches.append(batch.slice(max(start - offset, 0), stop - max(start, offset)))
            offset += batch.num_rows
            if offset >= stop:
                break
        return pa.Table.from_batches(batches) if batches else pa.table({})
    rows = []
    for index, (line_number, line) in enumerate(_json_lines(filesystem_, path)):
        if index >= stop:
            break
        if index >= start:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{uri}, line {line_number}: not valid JSON ({exc.msg})") from None
    return pa.Table.from_pylist(rows)


def _json_lines(filesystem_: Any, path: str, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line, streamed in chunks."""
    line_number, rest = 0, b""
    with filesystem_.open_input_stream(path) as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                line_number += 1
                if line.strip():
                    yield line_number, line
    if rest.strip():
        yield line_number + 1, rest


def _csv_batches(filesystem_: Any, path: str, as_text: bool = False) -> Iterator[Any]:
    """Record batches of a CSV file, streamed; `as_text` reads every column as text (counting never fails)."""
    import pyarrow as pa
    from pyarrow import csv

    def open_reader(handle: Any, convert: Any = None) -> Any:
        try:
            return csv.open_csv(handle, convert_options=convert)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise ValueError(f"{path}: {exc}") from None

    convert = None
    if as_text:
        with filesystem_.open_input_stream(path) as handle:
            header = open_reader(handle)
        if header is None:
            return
        names = header.schema.names
        convert = csv.ConvertOptions(column_types={n: pa.string() for n in names}, include_columns=names[:1])
    with filesystem_.open_input_stream(path) as handle:
        reader = open_reader(handle, convert)
        if reader is not None:
            yield from reader


# --- publishing -----------------------------------------------------------------

def _copy(source_uri: str, target_uri: str) -> None:
    from pyarrow import fs

    source_fs, source_path = storage.filesystem(source_uri)
    target_fs, target_path = storage.filesystem(target_uri)
    target_fs.create_dir(target_path.rsplit("/", 1)[0], recursive=True)
    fs.copy_files(source_path, target_path, source_filesystem=source_fs, destination_filesystem=target_fs)


def _combined_hash(parts: list[dict]) -> str:
    import hashlib

    return hashlib.sha256("".join(p["sha256"] for p in parts).encode()).hexdigest()


# --- a shard in a pod -------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`python -m pipespec.tasklib.inference predict --params-json JOB --result-file PATH`: what an
    inference pod runs (pipespec.tasklib.compute.kubernetes.predict_pod_kwargs). JOB holds the
    pipeline, the champion `load_champion` resolved, the shard and the Airflow run; the result is
    exactly what `predict` returns on a worker, written where the pod's xcom sidecar reads it."""
    import argparse
    import dataclasses

    parser = argparse.ArgumentParser(prog="python -m pipespec.tasklib.inference")
    parser.add_argument("command", choices=["predict"])
    parser.add_argument("--params-json", required=True)
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.params_json)
    fields = {f.name for f in dataclasses.fields(RunContext)}
    ctx = RunContext(**{key: value for key, value in job["run"].items() if key in fields})
    result = predict(ctx, pipeline=job["pipeline"], model=job["model"], shard=job["shard"])
    Path(args.result_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
