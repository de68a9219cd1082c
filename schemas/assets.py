"""Which Assets a spec produces and consumes, with the defaults filled in.

One place for the defaults so the checker, the IR and the docs agree:
training runs on `data.publishes`, promotion updates `model://<pipeline>`,
inference runs when that model Asset updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipespec.schemas.diagnostics import YamlPath
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.models.common import MANUAL, AllOf, AnyOf, Trigger


def model_asset(spec: PipelineSpec) -> str | None:
    """The model Asset a train section publishes (default `model://<pipeline>`); None without one."""
    if spec.train is None:
        return None
    return spec.train.publishes or f"model://{spec.pipeline}"


def train_dataset(spec: PipelineSpec) -> str | None:
    """The Asset training reads (default `data.publishes`); None without training or data."""
    if spec.train is None:
        return None
    return spec.train.dataset or (spec.data.publishes if spec.data else None)


def trigger(schedule: Trigger | str | None, default: str | None = None) -> Trigger | None:
    """What starts a DAG; None: only a person (`schedule: manual`, or no schedule and no default Asset)."""
    if schedule == MANUAL:
        return None
    if isinstance(schedule, Trigger):
        return schedule
    return Trigger(assets=default) if default else None


def data_trigger(spec: PipelineSpec) -> Trigger | None:
    """When the data DAG runs; None without a data section."""
    return trigger(spec.data.schedule) if spec.data else None


def train_trigger(spec: PipelineSpec) -> Trigger | None:
    """When the train DAG runs (default: when its dataset updates); None without training."""
    return trigger(spec.train.schedule, train_dataset(spec)) if spec.train else None


def inference_trigger(spec: PipelineSpec) -> Trigger | None:
    """When the inference DAG runs (default: when the model updates); None without inference."""
    return trigger(spec.inference.schedule, model_asset(spec)) if spec.inference else None


def produced(spec: PipelineSpec) -> list[tuple[str, YamlPath]]:
    """(Asset URI, YAML path) of every Asset the spec publishes."""
    out: list[tuple[str, YamlPath]] = []
    if spec.data:
        out.append((spec.data.publishes, ("data", "publishes")))
    if spec.train:
        out.append((model_asset(spec), ("train", "publishes")))  # type: ignore[arg-type]
    if spec.inference:
        out.append((spec.inference.output, ("inference", "output")))
    return out


def consumed(spec: PipelineSpec) -> list[tuple[str, YamlPath]]:
    """Assets named in schedules, with the YAML path of the schedule that names them."""
    out: list[tuple[str, YamlPath]] = []
    for section in ("data", "train", "inference"):
        body = getattr(spec, section)
        written = trigger(body.schedule) if body else None
        if written is not None and written.assets is not None:
            out += [(uri, (section, "schedule")) for uri in asset_uris(written.assets)]
    if spec.train and spec.train.dataset:
        out.append((spec.train.dataset, ("train", "dataset")))
    return out


def asset_uris(expr) -> Iterator[str]:
    """Every URI in an Asset expression (a URI, a list, `all` or `any`), depth first."""
    if isinstance(expr, str):
        yield expr
    elif isinstance(expr, list):
        for item in expr:
            yield from asset_uris(item)
    elif isinstance(expr, AllOf):
        yield from asset_uris(expr.all)
    elif isinstance(expr, AnyOf):
        yield from asset_uris(expr.any)
