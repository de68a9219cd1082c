"""The cost gate before a paid fine-tune (seed 002): tokens × price must stay under the budget.

Tokens are estimated, not counted: four characters to a token, OpenAI's published rule of
thumb for English text, plus a fixed overhead per example for the chat format. The exact
tokenizers (tiktoken) download their vocabularies on first use, which a worker with no
internet cannot do, and a gate only needs the order of magnitude: a $20 budget is not missed
by a few percent. The estimate and the rule are in the result, so the alert shows both.
"""

from __future__ import annotations

import math
from typing import Any

from pipespec.tasklib.context import RunContext

CHARS_PER_TOKEN = 4
TOKENS_PER_EXAMPLE = 8  # role markers and separators of one chat-format training example


def estimate_tokens(dataset: dict, columns: list[str], conn_id: str | None = None) -> tuple[int, int]:
    """(estimated tokens of one epoch, examples) over the text of `columns` of a Parquet Ref, streamed by batch."""
    import pyarrow.compute as pc

    from pipespec.tasklib.storage import iter_batches, open_parquet

    characters = examples = 0
    with open_parquet(dataset, conn_id) as file:
        present = [column for column in columns if column in file.schema_arrow.names]
        for batch in iter_batches(file, columns=present):
            examples += batch.num_rows
            for column in batch.columns:
                lengths = pc.utf8_length(pc.cast(column, "string"))
                characters += int(pc.sum(lengths).as_py() or 0)
    return math.ceil(characters / CHARS_PER_TOKEN) + TOKENS_PER_EXAMPLE * examples, examples


def cost_gate(ctx: RunContext, *, dataset: str, columns: list[str], epochs: int,
              usd_per_million_tokens: float, budget_usd: float, conn_id: str | None = None) -> dict[str, Any]:
    """The latest publication of `dataset` (what training will read), priced:
    {"decision": "pass" | "blocked", "reason", "tokens", "estimated_usd", "budget_usd", ...}."""
    from pipespec.tasklib.published import latest

    published = latest(dataset, conn_id)
    if published is None:
        raise FileNotFoundError(f"{dataset}: nothing published yet (no _LATEST), so there is nothing to price")
    tokens, examples = estimate_tokens(published.data.to_dict(), columns, conn_id)
    trained_tokens = tokens * epochs
    estimate = round(trained_tokens * usd_per_million_tokens / 1_000_000, 4)
    over = estimate > budget_usd
    reason = (f"estimated ${estimate:,.2f} ({trained_tokens:,} tokens: {tokens:,} per epoch × {epochs} epochs at "
              f"${usd_per_million_tokens}/1M) is {'over' if over else 'within'} the ${budget_usd:,.2f} budget")
    return {"decision": "blocked" if over else "pass", "reason": reason, "tokens": trained_tokens,
            "examples": examples, "estimated_usd": estimate, "budget_usd": budget_usd,
            "rule": f"{CHARS_PER_TOKEN} characters per token + {TOKENS_PER_EXAMPLE} per example"}
