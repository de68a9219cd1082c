"""Where the platform policy file is: named by $PIPESPEC_POLICY. Its own module, free of pydantic,
so the DAG loader's warm parse can key its cache on the policy without importing the models."""

from __future__ import annotations

import os

POLICY_ENV = "PIPESPEC_POLICY"


def policy_location() -> str | None:
    """The policy file $PIPESPEC_POLICY names, or None when it names none."""
    return os.environ.get(POLICY_ENV, "").strip() or None
