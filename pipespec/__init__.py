"""pipespec: production ML pipelines on Apache Airflow 3, from one YAML file.

One import namespace, in layers whose imports point down only (tests/project/test_layers.py):

    pipespec.schemas    the spec language: load, models, checks, policy, diagnostics, JSON Schema
    pipespec.compiler   spec -> IR (a frozen graph of registered steps), the IR cache, graph, diff
    pipespec.airflow    IR -> Airflow DAGs: loader, DAG builder, operators, step adapter, notifier
    pipespec.tasklib    the vetted steps, plain functions with typed parameters
    pipespec.local      demo, run, up, local alert receivers, sample data
    pipespec.cli        the `pipespec` command
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The wheel puts the repository's schemas/ and tasklib/ folders inside this package (pyproject.toml,
# [tool.hatch.build.targets.wheel.sources]). A checkout keeps them at the top level, beside this
# package: there the same names resolve through the package's search path.
_HERE = _Path(__file__).resolve().parent
if not (_HERE / "tasklib").is_dir() and (_HERE.parent / "tasklib" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))
