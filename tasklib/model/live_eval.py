"""Evaluate a served model over an OpenAI-compatible chat/completions endpoint (seed 000).

Seed 000 deploys the challenger silently (0% traffic) and evaluates it against that live
endpoint, after evaluating the base model the same way as a baseline. Here the prompts are the
holdout's feature column, the references its label column, and the answers are scored with
exact match and slot F1 (tasklib/model/metrics.py).

The transport is the `openai` client: it retries 429 and 5xx with exponential backoff (honouring
`retry-after`), applies the timeout, and reports token usage. We add the concurrency limit and
refuse to score when answers are missing: a half-answered holdout is not a score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipespec.tasklib.errors import PermanentFailure


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served: base URL (…/v1), model name, and the key (never from YAML)."""

    base_url: str
    model: str
    api_key: str = field(default="none", repr=False)


@dataclass(frozen=True)
class Limits:
    """How hard to hit the endpoint: requests in flight, seconds per request, retries per request."""

    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4


@dataclass(frozen=True)
class Answers:
    """The endpoint's answers, in prompt order, and the tokens it counted."""

    texts: list[str]
    prompt_tokens: int
    completion_tokens: int


class LiveEvaluationError(RuntimeError):
    """The endpoint did not answer every prompt, even after retries: the task's own retries may help."""


def ask(endpoint: Endpoint, prompts: Sequence[str], limits: Limits = Limits(),
        system_prompt: str | None = None) -> Answers:
    """Each prompt's answer, in order, with the tokens the endpoint counted."""
    return asyncio.run(_ask_all(endpoint, list(prompts), limits, system_prompt))


async def _ask_all(endpoint: Endpoint, prompts: list[str], limits: Limits, system_prompt: str | None) -> Answers:
    from openai import AsyncOpenAI, OpenAIError

    gate = asyncio.Semaphore(limits.concurrency)
    async with AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=limits.timeout_s,
                           max_retries=limits.max_retries) as client:
        async def one(prompt: str) -> Any:
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                       [{"role": "user", "content": prompt}]
            async with gate:
                return await client.chat.completions.create(model=endpoint.model, messages=messages,
                                                            temperature=0)

        results = await asyncio.gather(*(one(prompt) for prompt in prompts), return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        kinds = sorted({type(failure).__name__ for failure in failures})
        if not all(isinstance(failure, OpenAIError) for failure in failures):
            raise failures[0]
        raise LiveEvaluationError(
            f"{len(failures)} of {len(prompts)} prompts got no answer from {endpoint.base_url} after "
            f"{limits.max_retries} retries ({', '.join(kinds)}); check that the deployment is up and its rate "
            f"limits")
    texts = [(result.choices[0].message.content or "") for result in results]
    usage = [result.usage for result in results if result.usage is not None]
    return Answers(texts=texts, prompt_tokens=sum(u.prompt_tokens for u in usage),
                   completion_tokens=sum(u.completion_tokens for u in usage))


def score(endpoint: Endpoint, prompts: Sequence[str], references: Sequence[str], limits: Limits = Limits(),
          system_prompt: str | None = None) -> dict[str, Any]:
    """Exact match and slot F1 of the endpoint's answers, with the tokens spent on them."""
    from pipespec.tasklib.model.metrics import exact_match, slot_f1

    if len(prompts) != len(references):
        raise ValueError(f"{len(prompts)} prompts but {len(references)} references")
    answers = ask(endpoint, prompts, limits, system_prompt)
    return {"exact_match": exact_match(references, answers.texts), "slot_f1": slot_f1(references, answers.texts),
            "prompts": len(prompts), "prompt_tokens": answers.prompt_tokens,
            "completion_tokens": answers.completion_tokens}


def endpoint_from_connection(conn_id: str, model: str | None = None) -> Endpoint:
    """An endpoint from an Airflow connection: host (the base URL), password (the key), extra `model`."""
    from airflow.sdk import BaseHook

    from pipespec.tasklib.connections import base_url

    connection = BaseHook.get_connection(conn_id)
    base = base_url(connection, default_scheme=None)
    chosen = model or connection.extra_dejson.get("model")
    if not base.startswith(("http://", "https://")) or not chosen:
        raise PermanentFailure(f"connection `{conn_id}` needs an http(s) host (the …/v1 base URL) and a model "
                               f"(extra `model`); its password is the API key")
    return Endpoint(base_url=base, model=chosen, api_key=connection.password or "none")
