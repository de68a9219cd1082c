"""pipespec's own plugins, declared through the same contract as any installed package's
(`pipespec.schemas.plugins`): the catalog's model types with their params models, `container` (the
team's own code in its own image, docs/container-contract.md), the source types, transforms,
serving targets and alert channels. The task library resolves every one of them, built-in or
installed, through its registered implementation (pipespec.tasklib.steps.plugin_implementation)."""

from __future__ import annotations

from pipespec.schemas.catalog import MODEL_TYPES
from pipespec.schemas.models import data as d
from pipespec.schemas.models import model_params as p
from pipespec.schemas.models import operations as o
from pipespec.schemas.models import rollout as r
from pipespec.schemas.plugins import Plugin

_PARAMS = {
    "keras_text_classifier": p.KerasTextClassifierParams,
    "keras_image_classifier": p.KerasImageClassifierParams,
    "keras_tabular_classifier": p.KerasTabularClassifierParams,
    "keras_tabular_regressor": p.KerasTabularRegressorParams,
    "llm_finetune": p.LlmFinetuneParams,
}
# Resolved by the task library when a step runs (pipespec.tasklib.model.model_types).
_IMPLEMENTATION = {name: "pipespec.tasklib.model.model_types:KERAS" for name in _PARAMS}
_IMPLEMENTATION["llm_finetune"] = "pipespec.tasklib.compute.anyscale:job_operator_kwargs"  # trains as a job only

_TRANSFORM_FUNCTIONS = {"filter": "filter_rows"}

PLUGINS: list[Plugin] = [
    *(Plugin("model", name, _PARAMS[name], _IMPLEMENTATION[name], kind.description, kind.task, kind.backends)
      for name, kind in MODEL_TYPES.items()),
    Plugin("model", "container", p.ContainerParams, "pipespec.tasklib.model.model_types:CONTAINER",
           "Your own training code in your own image, under the container contract (v1).", "classification",
           frozenset({"local", "kubernetes", "anyscale"})),
    # Sources: read into Arrow chunks by pipespec.tasklib.data.extract (files: local, s3; queries: sql, snowflake).
    *(Plugin("source", name, params, f"pipespec.tasklib.data.extract:{'read_files' if name in ('s3', 'local') else 'read_query'}",
             (params.__doc__ or "").strip()) for name, params in d.BUILTIN_SOURCE_PARAMS.items()),
    # Transforms: pipespec.tasklib.data.transform's functions, applied inside the extract.
    *(Plugin("transform", name, params, f"pipespec.tasklib.data.transform:{_TRANSFORM_FUNCTIONS.get(name, name)}",
             (spec.__doc__ or "").strip()) for name, (spec, params) in d.BUILTIN_TRANSFORMS.items()),
    # Serving targets: each rollout stage hands the version to serve to pipespec.tasklib.rollout.targets.deploy.
    *(Plugin("serving_target", name, params, f"pipespec.tasklib.rollout.targets:{name}", (params.__doc__ or "").strip())
      for name, params in r.BUILTIN_TARGET_PARAMS.items()),
    # Alert channels: pipespec.tasklib.alerts.send formats the message once and hands it to each channel.
    *(Plugin("alert_channel", name, params, f"pipespec.tasklib.alerts:{name}", (params.__doc__ or "").strip())
      for name, params in o.BUILTIN_CHANNELS.items()),
]
