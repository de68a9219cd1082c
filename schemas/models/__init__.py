"""Pydantic models of a pipespec spec; `PipelineSpec` is the root."""

from pipespec.schemas.models.pipeline import PipelineSpec

__all__ = ["PipelineSpec"]
