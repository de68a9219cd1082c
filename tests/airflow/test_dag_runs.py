"""Compiled DAGs run for real: dag.test() against a migrated SQLite DB.

The steps here are small pure functions (swapped in by name through the
registry) so each test controls the numbers that drive gates and decisions;
the DAG structure, trigger rules, mapping, retries and alerts are the real
compiled ones.
"""

from __future__ import annotations

import textwrap

import pytest

from pipespec.local.sinks import AlertSinks
from pipespec.local.local_env import ensure_db
from tests.support.airflow_harness import run_dag, steps

SPEC = """\
pipeline: {name}
data:
  sources:
    - {{name: zendesk, type: local, path: z.jsonl, format: jsonl}}
    - {{name: slack, type: local, path: s.jsonl, format: jsonl}}
  transforms: [{{dedupe: {{key: text}}}}]
  threshold: {{min_records: 10}}
  publishes: s3://bucket-{name}/curated/
train: {{model: {{type: keras_text_classifier}}}}
evaluate: {{metric: f1_macro, floor: 0.5}}
rollout: {{min_improvement: 0.01, stages: [shadow, full]}}
retries: {{count: 2, delay: 1s}}
alerts:
  - {{on: [failure, retry, gate_blocked, promoted, rejected], webhook: {{conn_id: http_alerts}}}}
"""


@pytest.fixture(scope="module")
def airflow_db():
    ensure_db()


@pytest.fixture
def hook(monkeypatch):
    """Webhook alerts land on a real HTTP server on 127.0.0.1 (`http_alerts` connection)."""
    with AlertSinks() as sinks:
        for key, value in sinks.connections().items():
            monkeypatch.setenv(key, value)
        yield Alerts(sinks)


class Alerts:
    def __init__(self, sinks: AlertSinks):
        self.sinks = sinks

    def events(self) -> list[str]:
        return [event for _, event in self.sinks.events()]

    @property
    def received(self) -> list[dict]:
        return [r.body for r in self.sinks.received]


@pytest.fixture
def pipelines(tmp_path, request):
    name = request.node.name.split("[")[0].removeprefix("test_")[:40]
    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / f"{name}.yaml").write_text(SPEC.format(name=name))
    return directory, name


def extract_rows(rows_per_source):
    return lambda ctx, source, **_: {"source": source["name"], "rows": rows_per_source}


def data_steps(rows_per_source):
    return dict(
        data_extract=extract_rows(rows_per_source),
        data_transform=lambda ctx, ref, **_: ref,
        # measure joins the sources, measures them and is the gate: its decision picks the branch
        data_curate=lambda ctx, refs, threshold, **_: (lambda rows: {
            "rows": rows, "min_records": threshold["min_records"],
            "decision": "pass" if rows >= threshold["min_records"] else "blocked"})(sum(r["rows"] for r in refs)),
        data_publish=lambda ctx, **_: {"published": True},
    )


def train_steps(challenger, champion):
    return dict(
        model_train=lambda ctx, **_: {"version": "2"},
        model_evaluate=lambda ctx, trained, **_: {"challenger": challenger, "champion": champion},
        rollout_shadow=lambda ctx, **_: {"stage": "shadow"},
        rollout_promote=lambda ctx, **_: {"promoted": True},
        rollout_reject=lambda ctx, **_: {"rejected": True},
        rollout_rollback=lambda ctx, **_: {"rolled_back": True},
        report_write=lambda ctx, **_: {"report": "ok"},
    )


def test_gate_passed_publishes(airflow_db, pipelines, hook, monkeypatch, tmp_path):
    directory, name = pipelines
    with steps(**data_steps(rows_per_source=6)):
        run, states = run_dag(directory, f"{name}__data", monkeypatch, tmp_path / "cache")
    assert run.state == "success"
    assert states[("extract", 0)] == states[("extract", 1)] == "success"
    assert not [task for task, _ in states if task.startswith("transform_")]  # fused into extract
    assert states[("publish", -1)] == "success"
    assert states[("notify_gate_blocked", -1)] == "skipped"
    assert hook.events() == []
    names = {ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "extract"}
    assert names == {"zendesk", "slack"}


def test_gate_blocked_skips_publish_and_alerts(airflow_db, pipelines, hook, monkeypatch, tmp_path):
    directory, name = pipelines
    with steps(**data_steps(rows_per_source=2)):
        run, states = run_dag(directory, f"{name}__data", monkeypatch, tmp_path / "cache")
    assert run.state == "success"  # a blocked gate is not a failure
    assert states[("publish", -1)] == "skipped"
    assert states[("notify_gate_blocked", -1)] == "success"
    assert hook.events() == ["gate_blocked"]
    assert hook.received[0]["details"]["rows"] == 4


@pytest.mark.parametrize("challenger, champion, expected", [
    (0.80, 0.70, "promote"),
    (0.60, None, "promote"),   # first run: no champion, floor met
    (0.70, 0.80, "reject"),
    (0.705, 0.70, "reject"),   # better, but less than min_improvement
    (0.45, None, "reject"),    # first run below the floor
])
def test_champion_challenger_paths(airflow_db, pipelines, hook, monkeypatch, tmp_path, challenger, champion, expected):
    directory, name = pipelines
    with steps(**train_steps(challenger, champion)):
        run, states = run_dag(directory, f"{name}__train", monkeypatch, tmp_path / "cache")
    assert run.state == "success"
    promoted = expected == "promote"
    assert states[("shadow", -1)] == ("success" if promoted else "skipped")
    assert states[("promote", -1)] == ("success" if promoted else "skipped")
    assert states[("reject", -1)] == ("skipped" if promoted else "success")
    assert states[("rollback", -1)] == "skipped"
    assert states[("report", -1)] == "success"  # the report runs on both paths
    assert hook.events() == (["promoted"] if promoted else ["rejected"])


def test_failed_stage_rolls_back(airflow_db, pipelines, hook, monkeypatch, tmp_path):
    directory, name = pipelines

    def broken_shadow(ctx, **_):
        raise RuntimeError("shadow deployment unhealthy")

    implementations = {**train_steps(0.9, 0.7), "rollout_shadow": broken_shadow}
    with steps(**implementations):
        run, states = run_dag(directory, f"{name}__train", monkeypatch, tmp_path / "cache")
    assert run.state == "failed"
    assert states[("shadow", -1)] == "failed"
    assert states[("promote", -1)] == "upstream_failed"
    assert states[("rollback", -1)] == "success"


def test_failing_step_retries_then_alerts(airflow_db, pipelines, hook, monkeypatch, tmp_path):
    directory, name = pipelines
    attempts = []

    def flaky_extract(ctx, source, **_):
        attempts.append((source["name"], ctx.try_number))
        if source["name"] == "slack":
            raise ConnectionError("slack export timed out")
        return {"source": source["name"], "rows": 50}

    with steps(**{**data_steps(50), "data_extract": flaky_extract}):
        run, states = run_dag(directory, f"{name}__data", monkeypatch, tmp_path / "cache")
    assert run.state == "failed"
    assert [t for s, t in attempts if s == "slack"] == [1, 2, 3]  # first try + retries.count = 2
    assert states[("extract", 0)] == "success"
    assert states[("publish", -1)] == "upstream_failed"
    assert hook.events().count("retry") == 2
    assert hook.events()[-1] == "failure"
    failure = hook.received[-1]
    assert failure["details"]["task_id"] == "extract" and "timed out" in failure["details"]["error"]


def test_spec_values_are_never_rendered_as_jinja(airflow_db, tmp_path, hook, monkeypatch):
    """A spec string such as `{{ conn.x.password }}` must reach the step as written, not rendered
    from Airflow's context (that would leak secrets and bypass the SQL sandbox)."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "jinja.yaml").write_text(textwrap.dedent("""\
        pipeline: jinja
        data:
          sources:
            - {name: a, type: sql, conn_id: db, query: "select '{{ data_interval_start }}'"}
          publishes: s3://bucket-jinja/curated/
    """))
    seen = []

    def capture(ctx, source, **_):
        seen.append(source["query"])
        return {"source": source["name"], "rows": 50}

    with steps(**{**data_steps(50), "data_extract": capture}):
        run, _ = run_dag(directory, "jinja__data", monkeypatch, tmp_path / "cache")
    assert run.state == "success"
    # Airflow's context has `data_interval_start`: had Airflow rendered the field, the date would be here.
    assert seen == ["select '{{ data_interval_start }}'"]


def test_manual_run_without_logical_date_gets_an_interval_up_to_the_trigger():
    """Airflow 3 gives a run triggered without a logical date no data interval; steps still get one."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from pipespec.airflow.adapter import run_context

    triggered = datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc)
    context = {"ti": SimpleNamespace(dag_id="p__data", task_id="extract", map_index=0, try_number=1),
               "run_id": "manual__x", "logical_date": None, "data_interval_start": None, "data_interval_end": None,
               "dag_run": SimpleNamespace(run_after=triggered), "prev_data_interval_end_success": None}
    ctx = run_context(context)
    assert (ctx.data_interval_start, ctx.data_interval_end) == ("1970-01-01T00:00:00+00:00", triggered.isoformat())
    context["prev_data_interval_end_success"] = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert run_context(context).data_interval_start == "2026-03-01T00:00:00+00:00"
