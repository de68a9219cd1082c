"""A local OpenAI-compatible chat/completions server on 127.0.0.1 that serves a stand-in model.

It stands where an Anyscale Service (seed 000's silent deployment) or any OpenAI-compatible
server would, so the live evaluation runs for real here: `POST /v1/chat/completions` answers
the last user message with `StandinLLM.complete`, counts tokens (whitespace words) in `usage`,
and checks the bearer token the deployment was given. For the fault tests it can answer the
first requests with 429 or 503 and hold each answer for a while, and it records how many
requests were in flight at once.

Run it as a process (`python -m pipespec.local.openai_server --model DIR --port N --token T`):
it exits by itself after `--idle-exit` seconds without a request, so nothing outlives a run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipespec.local.standin_llm import StandinLLM


@dataclass
class Faults:
    """Failures to inject: the first `throttle` requests get 429, the next `unavailable` get 503."""

    throttle: int = 0
    unavailable: int = 0
    delay_s: float = 0.0


@dataclass
class ServerState:
    """What the server serves and what it has seen (the tests read the counters)."""

    models: dict[str, StandinLLM]
    token: str | None
    adapters: Path | None = None  # model ids not in `models` load from <adapters>/<model id> (LoRA-style)
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    last_request: float = field(default_factory=time.monotonic)

    def model(self, model_id: str) -> StandinLLM | None:
        """A served model by id: a fixed one, or an adapter folder loaded on first use."""
        if model_id in self.models or self.adapters is None or not model_id:
            return self.models.get(model_id)
        folder = (self.adapters / model_id).resolve()
        if not folder.is_relative_to(self.adapters.resolve()) or not (folder / "standin.json").is_file():
            return None
        self.models[model_id] = StandinLLM.load(folder)
        return self.models[model_id]


def make_app(state: ServerState) -> Any:
    """The FastAPI app: `/v1/models` and `/v1/chat/completions`."""
    from fastapi import FastAPI, Header, HTTPException
    from fastapi.responses import JSONResponse

    app = FastAPI(title="pipespec stand-in LLM")

    def authorise(authorization: str | None) -> None:
        if state.token is not None and not secrets.compare_digest(authorization or "", f"Bearer {state.token}"):
            raise HTTPException(status_code=401, detail="bad token")

    @app.get("/v1/models")
    def models(authorization: str | None = Header(None)) -> dict:
        authorise(authorization)
        return {"object": "list", "data": [{"id": name, "object": "model"} for name in state.models]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict, authorization: str | None = Header(None)) -> Any:
        authorise(authorization)
        state.requests += 1
        state.last_request = time.monotonic()
        number = state.requests
        if number <= state.faults.throttle:
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"retry-after": "0"})
        if number <= state.faults.throttle + state.faults.unavailable:
            return JSONResponse({"error": {"message": "warming up"}}, status_code=503)
        model = state.model(str(body.get("model", "")))
        if model is None:
            raise HTTPException(status_code=404, detail="no such model")
        messages = body.get("messages") or []
        prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.faults.delay_s:
                await asyncio.sleep(state.faults.delay_s)
            answer = model.complete(prompt)
        finally:
            state.in_flight -= 1
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(answer.split())
        return {"id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    return app


class RunningServer:
    """A server in a background thread of this process (tests): `url`, `state`, `stop()`."""

    def __init__(self, state: ServerState, port: int) -> None:
        import uvicorn

        self.state = state
        self.url = f"http://127.0.0.1:{port}/v1"
        config = uvicorn.Config(make_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the stand-in LLM server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Serve saved stand-in models until idle for `--idle-exit` seconds."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                        help="serve the stand-in model saved in DIR under the name NAME")
    parser.add_argument("--adapters", type=Path, help="serve model id X from the folder ADAPTERS/X")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=None, help="bearer token clients must send")
    parser.add_argument("--idle-exit", type=float, default=600, help="exit after this many idle seconds")
    args = parser.parse_args(argv)
    models = {name: StandinLLM.load(Path(folder)) for name, folder in (m.split("=", 1) for m in args.model)}
    state = ServerState(models=models, token=args.token, adapters=args.adapters)
    server = uvicorn.Server(uvicorn.Config(make_app(state), host="127.0.0.1", port=args.port, log_level="warning",
                                           lifespan="off"))

    def exit_when_idle() -> None:
        while not server.should_exit:
            time.sleep(1)
            if time.monotonic() - state.last_request > args.idle_exit:
                server.should_exit = True

    threading.Thread(target=exit_when_idle, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
