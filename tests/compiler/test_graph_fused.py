"""`pipespec graph` with a source's transforms fused into its extract task (issue 16): the
transforms are no longer tasks, so the extract node names them, in order."""

from __future__ import annotations

from pipespec.compiler.graph import to_dot, to_mermaid
from pipespec.compiler.ir import Dag, Mapping, Pipeline, Retry, Schedule, Task


def fused_pipeline() -> Pipeline:
    transforms = [{"dedupe": {"key": ["text"]}}, {"drop_empty": ["text"]}, {"redact_pii": ["text"]}]
    extract = Task("extract", "data.extract", {"pipeline": "p", "transforms": transforms},
                   mapping=Mapping("source", items=({"name": "zendesk"}, {"name": "app"}), label="name"))
    join = Task("join", "data.join", {"pipeline": "p"}, {"refs": "extract"}, ("extract",))
    dag = Dag("p__data", Schedule("none"), "", "", "", (), Retry(1, 60, False, None), (), (extract, join))
    return Pipeline("p", "p.yaml", "0", (dag,))


def test_extract_node_lists_its_fused_transforms_in_order() -> None:
    mermaid = to_mermaid(fused_pipeline())
    assert 'p__data__extract["extract<br/>[mapped over sources: zendesk, app]<br/>then dedupe → drop_empty → ' \
           'redact_pii"]' in mermaid
    assert "then dedupe → drop_empty → redact_pii" in to_dot(fused_pipeline())


def test_an_extract_without_transforms_has_no_such_line() -> None:
    plain = Task("extract", "data.extract", {"pipeline": "p", "transforms": []})
    dag = Dag("p__data", Schedule("none"), "", "", "", (), Retry(1, 60, False, None), (), (plain,))
    assert "then" not in to_mermaid(Pipeline("p", "p.yaml", "0", (dag,)))
