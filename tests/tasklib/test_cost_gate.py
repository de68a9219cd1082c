"""The cost gate before a paid fine-tune: tokens × price against the budget (seed 002)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model.cost_gate import CHARS_PER_TOKEN, TOKENS_PER_EXAMPLE, cost_gate
from pipespec.tasklib.storage import write_table

CTX = RunContext(dag_id="genai__train", task_id="cost_gate", run_id="r1")


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path))
    table = pa.table({"body": ["a" * 400, "b" * 400, None], "tone": ["formal", "urgent", "formal"],
                      "extra": ["x" * 10_000] * 3})
    from pipespec.tasklib.published import mark_latest, run_prefix, write_manifest

    prefix = run_prefix("s3://content/curated/", "scheduled__1", "genai")
    ref = write_table(table, f"{prefix}/data.parquet")
    write_manifest(prefix, {"data": ref.to_dict(), "run_id": "scheduled__1", "pipeline": "genai"})
    mark_latest("s3://content/curated/", prefix)
    return "s3://content/curated/"


def test_within_budget_passes_with_the_estimate_and_its_rule(dataset):
    result = cost_gate(CTX, dataset=dataset, columns=["body", "tone"], epochs=3, usd_per_million_tokens=8.0,
                       budget_usd=20.0)
    per_epoch = (800 + 6 + 6 + 6) // CHARS_PER_TOKEN + 1 + TOKENS_PER_EXAMPLE * 3  # unselected columns don't count
    assert result["tokens"] == 3 * per_epoch and result["examples"] == 3
    assert result["decision"] == "pass" and "within the $20.00 budget" in result["reason"]
    assert result["estimated_usd"] == pytest.approx(3 * per_epoch * 8 / 1e6, abs=1e-4)


def test_over_budget_blocks(dataset):
    result = cost_gate(CTX, dataset=dataset, columns=["body", "tone"], epochs=100, usd_per_million_tokens=500_000.0,
                       budget_usd=20.0)
    assert result["decision"] == "blocked" and "over the $20.00 budget" in result["reason"]
    assert result["estimated_usd"] > 20
