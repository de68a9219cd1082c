"""Every compiled task calls its step with exactly what the step declares.

A step is a plain function `step(ctx, *, name: Type, ...)`: keyword-only, every parameter typed,
no `**kwargs`. For every task of every example and valid golden case, the compiler's params plus
the task's upstream inputs (plus the mapped argument) must bind to that signature with nothing
left over and nothing required missing, and each param's value must validate against its type.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from pipespec.compiler.compile import compile_checked
from pipespec.schemas.check import check_file
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.steps import STEPS, resolve
from tests.support.paths import CASES, EXAMPLES

SPECS = sorted(EXAMPLES.glob("*.yaml")) + sorted((CASES / "valid").glob("*.yaml"))
STEP_KINDS = {"python", "branch"}  # approval and remote-job tasks have no step function


def compiled_tasks():
    for spec in SPECS:
        checked = check_file(spec)
        assert checked.ok, spec
        for dag in compile_checked(checked).dags:
            for task in dag.tasks:
                if task.kind in STEP_KINDS:
                    yield pytest.param(task, id=f"{dag.dag_id}.{task.task_id}")


@pytest.mark.parametrize("step", sorted(STEPS))
def test_steps_declare_typed_keyword_parameters(step):
    function = resolve(step)
    signature = inspect.signature(function)
    first, *rest = signature.parameters.values()
    hints = typing.get_type_hints(function)
    assert first.name == "ctx" and hints["ctx"] is RunContext
    assert rest and all(p.kind is p.KEYWORD_ONLY for p in rest), f"{step}: parameters after ctx are keyword-only"
    assert all(p.name in hints for p in rest), f"{step}: every parameter has a type"
    assert "return" in hints and function.__doc__, f"{step}: a documented, typed result"
    body = ast.parse(textwrap.dedent(inspect.getsource(function)))
    used = {node.id for node in ast.walk(body) if isinstance(node, ast.Name)}
    assert not {p.name for p in rest} - used, f"{step} is given parameters it ignores"


@pytest.mark.parametrize("task", compiled_tasks())
def test_compiled_params_bind_to_the_steps_signature(task):
    function = resolve(task.step)
    parameters = dict(list(inspect.signature(function).parameters.items())[1:])
    given = set(task.params) | set(task.inputs) | ({task.mapping.arg} if task.mapping else set())
    required = {name for name, p in parameters.items() if p.default is p.empty}
    assert not given - set(parameters), f"{task.step} does not take {sorted(given - set(parameters))}"
    assert not required - given, f"{task.step} needs {sorted(required - given)}"
    hints = typing.get_type_hints(function)
    for name, value in task.params.items():
        TypeAdapter(hints[name]).validate_python(value, strict=False)
