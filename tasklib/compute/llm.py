"""LLM fine-tuning on Anyscale with LLMForge, as seed 000 runs Mistral-7B on VIGGO.

Three parts, each testable on its own:

1. Data (`prepare_data`, I/O): the published dataset's `runs/<run>/data.parquet`
   becomes chat-format JSONL next to it, `runs/<run>/finetune/{train,valid}.jsonl`,
   which is where LLMForge reads it (`train_path`, `valid_path`). The conversion is
   the pure `to_finetune_records`; the split is the pure, order-independent
   `split_records`. Same publication in, same files out: reruns rewrite identical files.
2. Config (`finetune_config`, pure): the LLMForge YAML as a dict (model_id,
   paths, epochs, context length, learning rate, LoRA rank/alpha ...).
3. Job (`finetune_job`, pure): how the config reaches the job. It travels in the
   environment variable PIPESPEC_LLMFORGE_CONFIG (JSON, which is valid YAML); the
   entrypoint writes it into the job's working directory and runs LLMForge on it.
   No file upload, and no spec text ever lands in the shell command: the only
   dynamic words are shell-quoted.

The command follows seed 000's fine-tuning script: `llmforge dev finetune <config>
--model-tag=<base>:<id> --forward-best-checkpoint-remote-uri=<uri>`, so the LoRA
weights land at `<uri>/<model tag>`, a place pipespec knows in advance (plain
`llmforge anyscale finetune` picks a tag itself and only prints it in the logs).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

CONFIG_ENV = "PIPESPEC_LLMFORGE_CONFIG"
CONFIG_FILE = "pipespec-llmforge.yaml"
LLMFORGE = ["llmforge", "dev", "finetune"]
LORA_TARGET_MODULES = ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                       "embed_tokens", "lm_head"]

# model.params of `llm_finetune`, with defaults (those of the LLMForge Mistral-7B LoRA template).
DEFAULTS: dict[str, Any] = {
    "base_model": None,            # required, e.g. mistralai/Mistral-7B-Instruct-v0.1
    "epochs": 3,
    "context_length": 512,
    "learning_rate": 1e-4,
    "num_devices": 4,
    "train_batch_size_per_device": 4,
    "eval_batch_size_per_device": 4,
    "lora_rank": 8,
    "lora_alpha": None,            # default: twice the rank
    "lora_dropout": 0.05,
    "accelerator_type": None,      # e.g. A10G: pins trainer workers to that GPU type
    "system_prompt": None,         # prepended to every conversation when set
    "valid_fraction": 0.1,
    "seed": 0,
    "output_uri": None,            # where LoRA weights go; default <dataset>/_lora
}


def model_settings(model: Mapping[str, Any]) -> dict[str, Any]:
    """model.params with defaults filled in; unknown or missing keys are errors a user can fix."""
    params = dict(model.get("params") or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"model.params.{unknown[0]} is not a parameter of llm_finetune "
                         f"(known: {', '.join(sorted(DEFAULTS))})")
    if not params.get("base_model"):
        raise ValueError("model.params.base_model is required for llm_finetune "
                         "(a Hugging Face model id such as mistralai/Mistral-7B-Instruct-v0.1)")
    settings = {**DEFAULTS, **params}
    if settings["lora_alpha"] is None:
        settings["lora_alpha"] = 2 * settings["lora_rank"]
    return settings


def columns(model: Mapping[str, Any]) -> tuple[str, str]:
    """(input column, output column): the single feature is the prompt, the label the answer."""
    features = list(model.get("features") or [])
    if len(features) != 1:
        raise ValueError(f"llm_finetune takes exactly one input column in model.features, got {features}")
    return features[0], model.get("label") or "label"


# --- data -------------------------------------------------------------------------

def to_finetune_records(rows: Iterable[Mapping[str, Any]], input_col: str, output_col: str,
                        system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Rows → LLMForge chat records: {"messages": [system?, user=input, assistant=output]}.

    Every row must have non-empty text in both columns; the error names the row (0-based)
    and the column, since a silently dropped example changes what the model learns.
    """
    records = []
    for index, row in enumerate(rows):
        texts = []
        for column in (input_col, output_col):
            value = row.get(column)
            if not isinstance(value, str) or not value.strip():
                found = "missing" if column not in row else f"{type(value).__name__} {value!r}"[:80]
                raise ValueError(f"row {index}: column `{column}` needs non-empty text for fine-tuning, found {found}")
            texts.append(value)
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]
        records.append({"messages": messages})
    return records


def split_records(records: list[dict[str, Any]], valid_fraction: float,
                  seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A record goes to validation when the hash of (seed, its content) falls below the fraction:
    stable across reruns and row orders, and a record never moves when others are added."""
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"model.params.valid_fraction must be in [0, 1), got {valid_fraction}")
    train, valid = [], []
    for record in records:
        digest = hashlib.sha256(f"{seed}:{json.dumps(record, sort_keys=True)}".encode()).digest()
        (valid if int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction else train).append(record)
    if not train:
        raise ValueError(f"no training examples left after holding out {valid_fraction:.0%} for validation")
    return train, valid


def to_jsonl(records: list[dict[str, Any]]) -> str:
    """Records as JSON lines."""
    return "".join(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n" for record in records)


def prepare_data(dataset: str, model: Mapping[str, Any], conn_id: str | None = None) -> dict[str, Any]:
    """Write the latest publication of `dataset` as train/valid JSONL beside its data.parquet."""
    from pipespec.tasklib.published import latest
    from pipespec.tasklib.storage import read_table, write_text

    published = latest(dataset, conn_id)
    if published is None:
        raise FileNotFoundError(f"{dataset}: nothing published yet (no _LATEST), so there is nothing to fine-tune on")
    input_col, output_col = columns(model)
    settings = model_settings(model)
    table = read_table(published.data, conn_id)
    missing = [c for c in (input_col, output_col) if c not in table.column_names]
    if missing:
        raise ValueError(f"{published.data.uri}: no column `{missing[0]}` (columns: {', '.join(table.column_names)})")
    records = to_finetune_records(table.select([input_col, output_col]).to_pylist(), input_col, output_col,
                                  settings["system_prompt"])
    train, valid = split_records(records, settings["valid_fraction"], settings["seed"])
    prefix = f"{published.data.uri.rsplit('/', 1)[0]}/finetune"
    paths = {"train_path": f"{prefix}/train.jsonl", "valid_path": f"{prefix}/valid.jsonl" if valid else None}
    write_text(paths["train_path"], to_jsonl(train), conn_id)
    if valid:
        write_text(paths["valid_path"], to_jsonl(valid), conn_id)
    return {**paths, "train_records": len(train), "valid_records": len(valid), "source": published.data.uri}


# --- config and job -----------------------------------------------------------------

def finetune_config(model: Mapping[str, Any], *, train_path: str, valid_path: str | None) -> dict[str, Any]:
    """The LLMForge fine-tuning config (the YAML file of the seed) as a dict."""
    s = model_settings(model)
    config: dict[str, Any] = {
        "model_id": s["base_model"],
        "train_path": train_path,
        **({"valid_path": valid_path} if valid_path else {}),
        "context_length": s["context_length"],
        "num_devices": s["num_devices"],
        "num_epochs": s["epochs"],
        "train_batch_size_per_device": s["train_batch_size_per_device"],
        "eval_batch_size_per_device": s["eval_batch_size_per_device"],
        "learning_rate": s["learning_rate"],
        "padding": "longest",
        "num_checkpoints_to_keep": 1,
        "lora_config": {
            "r": s["lora_rank"], "lora_alpha": s["lora_alpha"], "lora_dropout": s["lora_dropout"],
            "target_modules": list(LORA_TARGET_MODULES), "task_type": "CAUSAL_LM", "bias": "none",
            "modules_to_save": [],
        },
    }
    if s["accelerator_type"]:
        # A tiny fraction of the accelerator resource only pins workers to that GPU type.
        config["worker_resources"] = {f"accelerator_type:{s['accelerator_type']}": 0.001}
    return config


def model_tag(base_model: str, pipeline: str, run_id: str) -> str:
    """`<base model>:<pipeline>-<run hash>`: one adapter per training run, as in the seed."""
    from pipespec.tasklib.compute.kubernetes import dns_label

    return f"{base_model}:{dns_label(pipeline, 40)}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def lora_storage_uri(params: Mapping[str, Any]) -> str:
    """Where the fine-tuned LoRA weights are written."""
    settings = model_settings(params["model"])
    return (settings["output_uri"] or f"{params['dataset'].rstrip('/')}/_lora").rstrip("/")


def finetune_job(config: Mapping[str, Any], *, tag: str, lora_uri: str) -> tuple[str, dict[str, str]]:
    """(entrypoint, environment) for the Anyscale job that runs LLMForge on `config`."""
    command = shlex.join([*LLMFORGE, CONFIG_FILE, f"--model-tag={tag}",
                          f"--forward-best-checkpoint-remote-uri={lora_uri}"])
    entrypoint = f"printenv {CONFIG_ENV} > {CONFIG_FILE} && {command}"
    return entrypoint, {CONFIG_ENV: json.dumps(config, sort_keys=True)}
