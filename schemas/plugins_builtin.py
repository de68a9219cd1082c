"""pipespec's own plugins, declared through the same contract as any installed package's
(`pipespec.schemas.plugins`): the catalog's model types with their params models, and `container`,
the team's own code in its own image (docs/container-contract.md)."""

from __future__ import annotations

from pipespec.schemas.catalog import MODEL_TYPES
from pipespec.schemas.models import model_params as p
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

PLUGINS: list[Plugin] = [
    *(Plugin("model", name, _PARAMS[name], _IMPLEMENTATION[name], kind.description, kind.task, kind.backends)
      for name, kind in MODEL_TYPES.items()),
    Plugin("model", "container", p.ContainerParams, "pipespec.tasklib.model.model_types:CONTAINER",
           "Your own training code in your own image, under the container contract (v1).", "classification",
           frozenset({"local", "kubernetes", "anyscale"})),
]
