"""Pydantic models of a pipespec spec; `PipelineSpec` is the root.

Imported lazily: a task process imports `models.common` (through the platform policy) but never
needs the whole spec language, which costs ~0.15 s to build."""

__all__ = ["PipelineSpec"]


def __getattr__(name: str):
    if name == "PipelineSpec":
        from pipespec.schemas.models.pipeline import PipelineSpec

        return PipelineSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
