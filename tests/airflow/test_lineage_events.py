"""OpenLineage from a real run: the feedback pipeline's data -> train -> inference DAGs
(dag.test(), real steps and training) with Airflow's OpenLineage provider writing through
the OpenLineage client's file transport. The events must let an auditor walk from each
source to the curated Asset, to the model version trained on it, to the predictions
that version made."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.support.feedback_run import FeedbackRun, feedback_round

pytestmark = pytest.mark.slow  # a real pipeline round with TensorFlow training


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FeedbackRun:
    return feedback_round(tmp_path_factory.mktemp("lineage"))


def events(run: FeedbackRun) -> list[dict]:
    return [json.loads(line) for line in run.lineage.read_text().splitlines() if line.strip()]


def graph(completed: list[dict]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """dataset -> the datasets some job wrote after reading it."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for event in completed:
        for source in event.get("inputs", []):
            for target in event.get("outputs", []):
                edges[(source["namespace"], source["name"])].add((target["namespace"], target["name"]))
    return edges


def reachable(edges, start) -> set[tuple[str, str]]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_lineage_runs_from_each_source_to_the_curated_asset_the_model_and_its_predictions(run):
    completed = [e for e in events(run) if e["eventType"] == "COMPLETE" and "." in e["job"]["name"]]
    by_task = {e["job"]["name"].split(".", 1)[1]: e for e in completed}
    assert {e["job"]["namespace"] for e in completed} == {"pipespec-tests"}

    workspace = run.workspace.resolve()
    zendesk = ("file", str(workspace / "pipelines" / "data" / "feedback" / "zendesk"))
    slack = (f"sqlite://{workspace / 'slack.db'}", "slack_messages")  # table named by OpenLineage's SQL parser
    curated = ("s3://feedback", "curated")
    registry = f"mlflow://{workspace / 'storage' / 'mlflow.db'}"
    model = (registry, "models:/user_feedback/1")
    predictions = ("s3://feedback", "predictions")

    sources = {(d["namespace"], d["name"]) for e in completed if e["job"]["name"].endswith(".extract")
               for d in e["inputs"]}
    assert sources == {zendesk, slack}
    assert [(d["namespace"], d["name"]) for d in by_task["publish"]["outputs"]] == [curated]
    assert [(d["namespace"], d["name"]) for d in by_task["train"]["inputs"]] == [curated]
    assert [(d["namespace"], d["name"]) for d in by_task["train"]["outputs"]] == [model]
    assert [(d["namespace"], d["name"]) for d in by_task["publish_predictions"]["outputs"]] == [predictions]

    edges = graph(completed)
    for source in (zendesk, slack):
        assert {curated, model, predictions} <= reachable(edges, source), source
    assert predictions in reachable(edges, model)

    # Row counts and schemas travel with the datasets a step wrote.
    published = by_task["publish"]["outputs"][0]
    assert 300 < published["outputFacets"]["outputStatistics"]["rowCount"] <= 400  # 240 + 160 rows, deduplicated
    extracted = next(d for e in completed if e["job"]["name"].endswith(".extract") for d in e["outputs"])
    assert {f["name"] for f in extracted["facets"]["schema"]["fields"]} >= {"text", "label"}


def test_lineage_never_names_a_credential(run):
    text = run.lineage.read_text()
    assert "xoxb-local-sink" not in text  # the Slack connection's token (tests/support: AlertSinks)
    assert "password" not in text.lower()
