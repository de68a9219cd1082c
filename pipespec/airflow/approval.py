"""The approval stage's operator. Its own module: the HITL provider costs ~1 s to import, so
only DAGs with an approval stage pay for it (pipespec.airflow.dag imports this lazily)."""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator as _ApprovalOperator

from pipespec.airflow.step_operators import SpecValuesAreData


class ApprovalOperator(SpecValuesAreData, _ApprovalOperator):
    """Airflow's ApprovalOperator, whose `subject` (spec text) is shown as written, never rendered.

    Same name on purpose: the UI shows the operator type, and people know this one.
    """
