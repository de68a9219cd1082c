"""Anyscale, faked at the SDK client and made to do the work, so seed 000's loop runs here.

The Anyscale SDK ships `FakeAnyscaleClient`, which records requests but runs nothing. This
wraps it where the real platform would act:
- a submitted LLMForge job (the config in PIPESPEC_LLMFORGE_CONFIG, the model tag and the
  checkpoint URI in its command) trains the stand-in model (pipespec/local/standin_llm.py) on
  the job's train_path and writes it where LLMForge writes the LoRA weights, `<uri>/<tag>`;
- a rolled-out service starts the local OpenAI-compatible server on 127.0.0.1 serving the
  application's base model and, by model id, every adapter under its dynamic LoRA path;
- a terminated service stops that server.

Only the client the provider's hook builds is replaced (as in tests/tasklib/test_compute_backends.py);
every request still goes through the Anyscale provider and SDK. Storage must be the local root
(PIPESPEC_STORAGE_ROOT), where `s3://bucket/key` is `<root>/bucket/key`.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from pipespec.local.openai_server import RunningServer, ServerState
from pipespec.local.sample_data import viggo_rows
from pipespec.local.standin_llm import StandinLLM
from tests.support.airflow_server import free_port

BASE_TRAINING_ROWS = 20  # what the base model "knows" of the task before fine-tuning


def local_path(uri: str) -> Path:
    """Where `s3://bucket/key` lives under PIPESPEC_STORAGE_ROOT."""
    bucket_and_key = uri.removeprefix("s3://")
    return Path(os.environ["PIPESPEC_STORAGE_ROOT"]) / bucket_and_key


def base_model() -> StandinLLM:
    rows = viggo_rows(BASE_TRAINING_ROWS, seed=0)
    return StandinLLM.train([r["input"] for r in rows], [r["output"] for r in rows])


def finetune(env: dict[str, str], entrypoint: str) -> str:
    """Run the stand-in of `llmforge dev finetune`; the log it prints."""
    config = json.loads(env["PIPESPEC_LLMFORGE_CONFIG"])
    words = shlex.split(entrypoint.split("&&", 1)[1])
    options = dict(word.removeprefix("--").split("=", 1) for word in words if word.startswith("--"))
    inputs, outputs = [], []
    for line in local_path(config["train_path"]).read_text().splitlines():
        messages = {m["role"]: m["content"] for m in json.loads(line)["messages"]}
        inputs.append(messages["user"])
        outputs.append(messages["assistant"])
    folder = local_path(options["forward-best-checkpoint-remote-uri"]) / options["model-tag"]
    StandinLLM.train(inputs, outputs).save(folder)
    return f"fine-tuned {config['model_id']} on {len(inputs)} examples; adapter {options['model-tag']}\n"


@contextmanager
def working_anyscale(monkeypatch) -> Iterator[SimpleNamespace]:
    """Patch the provider's SDK client; yields the fake, the running servers and the requests."""
    from anyscale import Anyscale
    from anyscale._private.anyscale_client import FakeAnyscaleClient
    from anyscale._private.anyscale_client.fake_anyscale_client import OPENAPI_NO_VALIDATION
    from anyscale._private.sdk.timer import FakeTimer
    from anyscale.cli_logger import BlockLogger
    from anyscale.client.openapi_client.models import (
        ComputeTemplateConfig, DecoratedComputeTemplate, HaJobStates, RayRuntimeEnvConfig, ServiceEventCurrentState,
    )

    fake = FakeAnyscaleClient()
    for config_id, name in (("cc-llm", "llm-finetune-a10g"), ("cc-serve", "llm-serve-a10g")):
        config = ComputeTemplateConfig(cloud_id=fake.DEFAULT_CLOUD_ID, local_vars_configuration=OPENAPI_NO_VALIDATION)
        fake.add_compute_config(DecoratedComputeTemplate(
            id=config_id, name=name, config=config, local_vars_configuration=OPENAPI_NO_VALIDATION))
    submit, rollout, terminate = fake.submit_job, fake.rollout_service, fake.terminate_service
    servers: dict[str, RunningServer] = {}
    backend = SimpleNamespace(fake=fake, servers=servers, jobs=[], services=[], terminated=[])

    def submit_and_run(model):
        job = submit(model)
        runtime_env = copy.deepcopy(model.config.runtime_env) or {}
        env = runtime_env.get("env_vars") or {}
        log = finetune(env, model.config.entrypoint) if "PIPESPEC_LLMFORGE_CONFIG" in env else ""
        backend.jobs.append(model)
        job.last_job_run_id = f"{job.id}-run-1"
        fake.add_job_run_logs(job.last_job_run_id, log)
        job.config = copy.deepcopy(model.config)
        known = {k: v for k, v in runtime_env.items() if k in RayRuntimeEnvConfig.openapi_types}
        job.config.runtime_env = RayRuntimeEnvConfig(**known, local_vars_configuration=OPENAPI_NO_VALIDATION)
        job.state.current_state = HaJobStates.SUCCESS
        return job

    def rollout_and_serve(model):
        service = rollout(model)
        llm = model.ray_serve_config["applications"][0]["args"]["llm_configs"][0]
        base_id = llm["model_loading_config"]["model_id"]
        adapters = local_path(llm["lora_config"]["dynamic_lora_loading_path"])
        adapters.mkdir(parents=True, exist_ok=True)
        if model.name in servers:
            servers.pop(model.name).stop()
        token = secrets.token_hex(16)
        servers[model.name] = RunningServer(ServerState(models={base_id: base_model()}, token=token,
                                                        adapters=adapters), free_port())
        service.base_url = servers[model.name].url.removesuffix("/v1")
        service.auth_token = token
        service.current_state = ServiceEventCurrentState.RUNNING
        backend.services.append(model)
        return service

    def terminate_and_stop(service_id):
        name = fake._services[service_id].name
        terminate(service_id)
        backend.terminated.append(name)
        if name in servers:
            servers.pop(name).stop()

    fake.submit_job, fake.rollout_service, fake.terminate_service = submit_and_run, rollout_and_serve, terminate_and_stop

    def client(*, auth_token, headers):  # replaces only the SDK client the hook would construct
        return Anyscale._init_private(client=fake, logger=BlockLogger(), timer=FakeTimer())

    monkeypatch.setattr("anyscale_provider.hooks.anyscale.Anyscale", client)
    monkeypatch.setenv("AIRFLOW_CONN_ANYSCALE_CONN", json.dumps({"conn_type": "anyscale", "password": "fake-token"}))
    try:
        yield backend
    finally:
        for server in servers.values():
            server.stop()
