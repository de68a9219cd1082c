"""Which Assets a spec produces and consumes, with the defaults filled in.

One place for the defaults so the checker, the IR and the docs agree:
training runs on `data.publishes`, promotion updates `model://<pipeline>`,
inference runs when that model Asset updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from .diagnostics import Path
from .models import PipelineSpec
from .models.common import AllOf, AnyOf, Trigger


def model_asset(spec: PipelineSpec) -> str | None:
    if spec.train is None:
        return None
    return spec.train.publishes or f"model://{spec.pipeline}"


def train_dataset(spec: PipelineSpec) -> str | None:
    if spec.train is None:
        return None
    return spec.train.dataset or (spec.data.publishes if spec.data else None)


def train_trigger(spec: PipelineSpec) -> Trigger | None:
    if spec.train is None:
        return None
    if spec.train.schedule is not None:
        return spec.train.schedule
    dataset = train_dataset(spec)
    return Trigger(assets=dataset) if dataset else None


def inference_trigger(spec: PipelineSpec) -> Trigger | None:
    if spec.inference is None:
        return None
    if spec.inference.schedule is not None:
        return spec.inference.schedule
    model = model_asset(spec)
    return Trigger(assets=model) if model else None


def produced(spec: PipelineSpec) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if spec.data:
        out.append((spec.data.publishes, ("data", "publishes")))
    if spec.train:
        out.append((model_asset(spec), ("train", "publishes")))  # type: ignore[arg-type]
    if spec.inference:
        out.append((spec.inference.output, ("inference", "output")))
    return out


def consumed(spec: PipelineSpec) -> list[tuple[str, Path]]:
    """Assets named in schedules, with the YAML path of the schedule that names them."""
    out: list[tuple[str, Path]] = []
    for section in ("data", "train", "inference"):
        body = getattr(spec, section)
        trigger = getattr(body, "schedule", None) if body else None
        if trigger is not None and trigger.assets is not None:
            out += [(uri, (section, "schedule")) for uri in asset_uris(trigger.assets)]
    if spec.train and spec.train.dataset:
        out.append((spec.train.dataset, ("train", "dataset")))
    return out


def asset_uris(expr) -> Iterator[str]:
    if isinstance(expr, str):
        yield expr
    elif isinstance(expr, list):
        for item in expr:
            yield from asset_uris(item)
    elif isinstance(expr, AllOf):
        yield from asset_uris(expr.all)
    elif isinstance(expr, AnyOf):
        yield from asset_uris(expr.any)
