"""Run-time enforcement of the platform policy (schemas/policy.py): before any step runs (the
connections and URIs its spec-given params name) and before a remote job is requested.

`pipespec check` applies the same rules to the spec; this repeats them on the worker, with the
policy the worker was given ($PIPESPEC_POLICY), because a spec can reach a worker without that
check (a stale DAG cache, a policy tightened after the spec merged, `pipespec run`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pipespec.schemas.data_access import data_uri_problem
from pipespec.schemas.policy import (PolicyFileError, Violation, active_policy, check_conn_id, check_inference,
                                      check_target, check_train, check_uri)

from pipespec.tasklib.errors import PermanentFailure


class PolicyRefused(PermanentFailure):
    """The platform policy refuses what this task asks for; retrying cannot change that."""


_URI = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _policy(task_id: str) -> Any:
    try:
        return active_policy()
    except PolicyFileError as exc:  # a broken policy file refuses rather than allows
        raise PolicyRefused(f"task `{task_id}`: the platform policy file is invalid:\n{exc}") from None


def _refuse(task_id: str, violations: list[Violation]) -> None:
    if violations:
        raise PolicyRefused(f"task `{task_id}` refused by the platform policy:\n"
                            + "\n".join(f"- {v}" for v in violations))


def enforce_params(task_id: str, owner: str | None, params: Mapping[str, Any]) -> None:
    """Raise PolicyRefused unless `owner`'s team may use every connection and URI in a step's params.

    Only the params the compiler took from the spec: upstream outputs are pipespec's own work areas.
    """
    policy = _policy(task_id)
    violations = []
    for path, key, value in _leaves(params, ()):
        if key == "conn_id":
            violations += check_conn_id(policy, owner, value, path)
        elif _URI.match(value):
            violations += check_uri(policy, owner, value, path)
            if not value.startswith("model://") and (problem := data_uri_problem(value)):
                # The spec-language rule again (s3:// only, no `..` or `//`): a stale cache or a hand-run
                # DAG must not turn a `file://` URI into a read of the storage or work areas.
                violations.append(Violation(path, problem, "data lives in `s3://bucket/prefix/`"))
    _refuse(task_id, violations)


def _leaves(value: Any, path: tuple) -> Iterator[tuple[tuple, Any, str]]:
    """(path, key, string) for every string in nested params."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, str):
                yield (*path, key), key, item
            else:
                yield from _leaves(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield (*path, index), index, item
            else:
                yield from _leaves(item, (*path, index))


def enforce_train(task_id: str, params: Mapping[str, Any], owner: str | None = None) -> None:
    """Raise PolicyRefused unless the policy allows `owner`'s team every setting of this `train` task."""
    policy = _policy(task_id)
    violations = check_train(policy, owner, params["compute"], params.get("model"), params.get("dataset"))
    _refuse(task_id, violations)


def enforce_inference(task_id: str, compute: Mapping[str, Any], owner: str | None = None) -> None:
    """Raise PolicyRefused unless the policy allows `owner`'s team this inference pod."""
    _refuse(task_id, check_inference(_policy(task_id), owner, compute))


def enforce_target(task_id: str, owner: str | None, target: Mapping[str, Any]) -> None:
    """Raise PolicyRefused unless `owner`'s team may deploy to this serving target (namespace, image,
    compute config)."""
    _refuse(task_id, check_target(_policy(task_id), owner, target))
