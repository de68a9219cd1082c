"""Pydantic models of a pipespec spec; `PipelineSpec` is the root."""

from .pipeline import PipelineSpec

__all__ = ["PipelineSpec"]
