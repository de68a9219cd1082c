"""`model.evaluate_contract`: the former name of `model.evaluate` for plugin and `container` models.

Evaluation is one step now (pipespec.tasklib.model.evaluate scores every model type through the
model-type contract). This name stays only so DAGs compiled while the compiler still emitted it
keep resolving; it is the same function, not a second path.
"""

from __future__ import annotations

from pipespec.tasklib.model.evaluate import evaluate, score_versions

__all__ = ["evaluate", "score_versions"]
