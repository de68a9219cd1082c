"""Live evaluation over an OpenAI-compatible endpoint, against a real server on 127.0.0.1 that
serves a stand-in model trained here on VIGGO-style data (seed 000's evaluation loop)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipespec.local.openai_server import Faults, RunningServer, ServerState
from pipespec.local.sample_data import viggo_rows
from pipespec.local.standin_llm import StandinLLM
from pipespec.tasklib.model import live_eval
from pipespec.tasklib.model.metrics import exact_match, slot_f1
from tests.support.airflow_server import free_port

HOLDOUT = viggo_rows(120, seed=99)
PROMPTS = [row["input"] for row in HOLDOUT]
REFERENCES = [row["output"] for row in HOLDOUT]


def trained(rows: int) -> StandinLLM:
    data = viggo_rows(rows, seed=7)
    return StandinLLM.train([r["input"] for r in data], [r["output"] for r in data])


@pytest.fixture(scope="module")
def models() -> dict[str, StandinLLM]:
    return {"base": trained(20), "finetuned": trained(500)}


@pytest.fixture
def server(models):
    running = RunningServer(ServerState(models=models, token="s3cret"), free_port())
    yield running
    running.stop()


def endpoint(server, model: str) -> live_eval.Endpoint:
    return live_eval.Endpoint(base_url=server.url, model=model, api_key="s3cret")


def test_scores_over_the_endpoint_equal_scoring_the_model_directly(server, models):
    scores = live_eval.score(endpoint(server, "finetuned"), PROMPTS, REFERENCES, live_eval.Limits(concurrency=4))
    direct = [models["finetuned"].complete(p) for p in PROMPTS]
    assert scores["exact_match"] == pytest.approx(exact_match(REFERENCES, direct))
    assert scores["slot_f1"] == pytest.approx(slot_f1(REFERENCES, direct))
    assert scores["prompts"] == len(PROMPTS) == server.state.requests
    assert scores["prompt_tokens"] == sum(len(p.split()) for p in PROMPTS)
    assert scores["completion_tokens"] == sum(len(a.split()) for a in direct)


def test_the_fine_tuned_model_beats_its_base_on_both_metrics(server):
    base = live_eval.score(endpoint(server, "base"), PROMPTS, REFERENCES)
    tuned = live_eval.score(endpoint(server, "finetuned"), PROMPTS, REFERENCES)
    assert tuned["exact_match"] > base["exact_match"] + 0.3
    assert tuned["slot_f1"] > base["slot_f1"]


def test_concurrency_limit_holds(server):
    server.state.faults = Faults(delay_s=0.05)
    live_eval.ask(endpoint(server, "finetuned"), PROMPTS[:30], live_eval.Limits(concurrency=3))
    assert server.state.max_in_flight == 3


def test_429_and_503_are_retried_with_backoff(server):
    server.state.faults = Faults(throttle=2, unavailable=2)
    started = time.monotonic()
    answers = live_eval.ask(endpoint(server, "finetuned"), PROMPTS[:1], live_eval.Limits(max_retries=4))
    assert answers.texts and answers.texts[0].startswith(REFERENCES[0].split("(")[0])
    assert server.state.requests == 5  # four refused, then answered
    assert time.monotonic() - started > 0.5  # backoff waited between tries


def test_retries_run_out_with_a_clear_error_that_quotes_no_prompt(server):
    server.state.faults = Faults(unavailable=100)
    with pytest.raises(live_eval.LiveEvaluationError) as raised:
        live_eval.ask(endpoint(server, "finetuned"), PROMPTS[:2], live_eval.Limits(max_retries=1))
    message = str(raised.value)
    assert "2 of 2 prompts got no answer" in message and server.url in message
    assert PROMPTS[0] not in message


def test_timeout_applies(server):
    server.state.faults = Faults(delay_s=2)
    with pytest.raises(live_eval.LiveEvaluationError, match="APITimeoutError"):
        live_eval.ask(endpoint(server, "finetuned"), PROMPTS[:1], live_eval.Limits(timeout_s=0.2, max_retries=0))


def test_a_wrong_key_is_refused(server):
    wrong = live_eval.Endpoint(base_url=server.url, model="finetuned", api_key="guess")
    with pytest.raises(live_eval.LiveEvaluationError, match="AuthenticationError"):
        live_eval.ask(wrong, PROMPTS[:1], live_eval.Limits(max_retries=0))


def test_the_server_process_serves_a_saved_model_and_exits_when_idle(tmp_path: Path, models):
    folder = models["finetuned"].save(tmp_path / "model")
    assert StandinLLM.load(folder).complete(PROMPTS[0]) == models["finetuned"].complete(PROMPTS[0])
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipespec.local.openai_server", "--model", f"tuned={folder}",
                                "--port", str(port), "--token", "t", "--idle-exit", "3"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"authorization": "Bearer t"}).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        served = live_eval.ask(live_eval.Endpoint(f"http://127.0.0.1:{port}/v1", "tuned", "t"), PROMPTS[:5])
        assert served.texts == [models["finetuned"].complete(p) for p in PROMPTS[:5]]
        assert process.wait(timeout=20) == 0  # idle for 3 s: gone by itself
    finally:
        if process.poll() is None:
            process.kill()


def test_a_connections_url_takes_its_port_in_the_right_place():
    from types import SimpleNamespace

    from pipespec.tasklib.connections import base_url

    def conn(host, schema=None, port=None):
        return SimpleNamespace(host=host, schema=schema, port=port)

    assert base_url(conn("https://llm.internal/v1", port=8443)) == "https://llm.internal:8443/v1"
    assert base_url(conn("127.0.0.1", schema="http", port=8265)) == "http://127.0.0.1:8265"
    assert base_url(conn("127.0.0.1", port=8265)) == "http://127.0.0.1:8265"
    assert base_url(conn("llm.internal"), default_scheme=None) == "llm.internal"  # refused later: no scheme
    assert base_url(conn("http://h:9000/v1/", port=1)) == "http://h:9000/v1"  # the URL's own port wins
