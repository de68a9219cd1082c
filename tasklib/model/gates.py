"""`model.gates` and `rollout.decide_gated`: plugin gates after evaluation (`evaluate.gates`).

Each gate is a plugin of kind `gate` whose implementation is `(scores, params) -> (passed, reason)`:
`scores` is evaluation's result, `params` the gate's validated params model. Any gate that does
not pass vetoes the promotion: `decide_gated` rejects, with the gates' reasons, before the
champion/challenger rule is even asked."""

from __future__ import annotations

from typing import Any, Literal

from pipespec.tasklib.context import RunContext


def run_gates(ctx: RunContext, *, gates: list[dict[str, Any]], scores: dict[str, Any]) -> dict[str, Any]:
    """Evaluation's result with `gates`: [{"gate", "passed", "reason"}] in the spec's order."""
    from pipespec.schemas import plugins
    from pipespec.tasklib.steps import plugin_implementation

    results = []
    for gate in gates:
        params = plugins.check_params("gate", gate["type"], gate.get("params") or {})
        passed, reason = plugin_implementation("gate", gate["type"])(scores, params)
        results.append({"gate": gate["type"], "passed": bool(passed), "reason": str(reason)})
    return {**scores, "gates": results}


def decide(ctx: RunContext, *, scores: dict, direction: Literal["max", "min"], floor: float | None,
           min_improvement: float, rules: list[dict] | None = None, combine: Literal["all", "any"] = "all") -> dict:
    """Reject when a gate vetoed; otherwise the champion/challenger decision (rollout.decide)."""
    from pipespec.tasklib.rollout.decide import decide as champion_challenger

    vetoes = [g for g in scores.get("gates") or [] if not g["passed"]]
    if vetoes:
        return {"decision": "reject", "challenger": scores["challenger"], "champion": scores.get("champion"),
                "floor": floor, "min_improvement": min_improvement, "gates": scores["gates"],
                "reason": "; ".join(f"gate `{g['gate']}`: {g['reason']}" for g in vetoes)}
    return {**champion_challenger(ctx, scores=scores, direction=direction, floor=floor,
                                  min_improvement=min_improvement, rules=rules, combine=combine),
            "gates": scores.get("gates") or []}
