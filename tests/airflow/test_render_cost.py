"""What keeps a warm parse cheap in the operators pipespec builds (bench/dagbag_load.py), and that
each saving leaves the task Airflow sees unchanged."""

from __future__ import annotations

import inspect

from airflow.providers.standard.decorators.branch_python import _BranchPythonDecoratedOperator
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator

from pipespec.airflow.adapter import run_branch, run_step
from pipespec.airflow.links import STEP_LINKS, links_of_step
from pipespec.airflow.step_operators import BranchStepOperator, StepOperator


def test_a_step_operator_runs_airflows_default_argument_handling_once():
    """BaseOperatorMeta wraps every `__init__` that is not its first base's; the mixins listed first
    would have had the Airflow operator's (already wrapped) `__init__` wrapped a second time."""
    assert StepOperator.__init__ is _PythonDecoratedOperator.__init__
    assert BranchStepOperator.__init__ is _BranchPythonDecoratedOperator.__init__


def test_a_step_callables_cached_signature_is_its_own():
    import pipespec.airflow.dag  # noqa: F401 - builds the decorators, which cache the signatures

    for function in (run_step, run_branch):
        cached = function.__signature__
        del function.__signature__
        try:
            assert inspect.signature(function) == cached
        finally:
            function.__signature__ = cached


def test_extra_links_are_the_steps_on_a_task_and_all_on_the_class(tmp_path):
    """The class's links are what Airflow serializes a mapped task with; a task has its step's."""
    from airflow.serialization.serialized_objects import DagSerialization

    from pipespec.airflow.loader import load_dags
    from tests.support.paths import EXAMPLES

    assert StepOperator.operator_extra_links == STEP_LINKS
    namespace: dict = {}
    load_dags(EXAMPLES, namespace, tmp_path / "cache")
    dag = namespace["user_feedback__train"]
    serialized = {task["__var"]["task_id"]: task["__var"] for task in DagSerialization.to_dict(dag)["dag"]["tasks"]}
    for task in dag.tasks:
        if isinstance(task, StepOperator):
            assert task.operator_extra_links == links_of_step(task.op_kwargs["step"])
            names = {link.name for link in task.operator_extra_links}
            assert set(serialized[task.task_id].get("_operator_extra_links", {})) == names
    train = dag.get_task("train")
    assert train.operator_extra_links
    train.operator_extra_links = ()  # a value set on a task wins
    assert train.operator_extra_links == ()
