"""Champion/challenger decision: pure, so every branch is easy to test."""

from __future__ import annotations

from typing import Literal

from pipespec.tasklib.context import RunContext


def decide(ctx: RunContext, *, scores: dict, direction: Literal["max", "min"],
           floor: float | None, min_improvement: float) -> dict:
    """`scores` holds `challenger` and `champion` (None when there is no champion yet) on one holdout."""
    challenger, champion = scores["challenger"], scores.get("champion")
    sign = 1 if direction == "max" else -1
    record = {"challenger": challenger, "champion": champion, "floor": floor, "min_improvement": min_improvement}
    if floor is not None and sign * (challenger - floor) < 0:
        return {**record, "decision": "reject", "reason": f"challenger {challenger:.4f} misses the floor {floor}"}
    if champion is None:
        return {**record, "decision": "promote", "reason": "no champion yet and the floor is met"}
    improvement = sign * (challenger - champion)
    record["improvement"] = improvement
    if improvement < min_improvement or improvement <= 0:
        return {**record, "decision": "reject",
                "reason": f"improvement {improvement:+.4f} over champion {champion:.4f} is below {min_improvement}"}
    return {**record, "decision": "promote", "reason": f"beats the champion by {improvement:+.4f}"}
