"""Run-time enforcement of the platform policy (schemas/policy.py) before a remote job is requested.

`pipespec check` applies the same rules to the spec; this repeats them on the worker, with the
policy the worker was given ($PIPESPEC_POLICY), because a spec can reach a worker without that
check (a stale DAG cache, a policy tightened after the spec merged, `pipespec run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.policy import PolicyFileError, active_policy, check_train

from ..errors import PermanentFailure


class PolicyRefused(PermanentFailure):
    """The platform policy refuses what this task asks for; retrying cannot change that."""


def enforce_train(task_id: str, params: Mapping[str, Any]) -> None:
    """Raise PolicyRefused unless the policy allows every setting of this `train` task."""
    try:
        policy = active_policy()
    except PolicyFileError as exc:  # a broken policy file refuses rather than allows
        raise PolicyRefused(f"train task `{task_id}`: the platform policy file is invalid:\n{exc}") from None
    # `owner` is the spec's team; params compiled before it was passed get the `default` section.
    violations = check_train(policy, params.get("owner"), params["compute"], params.get("model"),
                             params.get("dataset"))
    if violations:
        raise PolicyRefused(f"train task `{task_id}` refused by the platform policy:\n"
                            + "\n".join(f"- {v}" for v in violations))
