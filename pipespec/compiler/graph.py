"""`pipespec graph`: draw a compiled pipeline as Mermaid or Graphviz DOT.

Works on the IR only (no Airflow), so a PR can show the DAG shape a spec
produces. Both formats are rendered from one neutral graph so they never
disagree: one cluster per DAG, Asset nodes outside every cluster (an Asset
is shared between DAGs), dashed edges for the Asset wiring across DAGs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipespec.compiler.ir import ALWAYS, Dag, Mapping, Pipeline, Schedule, Task

# --- words shared with `pipespec diff` -------------------------------------------

def describe_schedule(schedule: Schedule) -> str:
    """A schedule in words: `manual`, `cron ...`, `assets: ...`."""
    if schedule.kind == "none":
        return "manual"  # no schedule: runs only when triggered
    if schedule.kind == "cron":
        return f"cron {schedule.cron}"
    if schedule.kind == "every":
        return f"every {_duration_text(schedule.every_s or 0)}"
    expr = describe_assets(schedule.assets)
    if schedule.kind == "assets":
        return f"assets: {expr}"
    return f"assets {expr} or cron {schedule.cron}"


def _duration_text(seconds: int) -> str:
    """7 days as `7d`, 90 minutes as `1h30m`: the spec's own way of writing it."""
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


def describe_assets(expr: Any) -> str:
    """An Asset expression as text: `all(a, any(b, c))`."""
    if isinstance(expr, str):
        return expr
    (op, items), = expr.items()  # the IR keeps exactly one of all/any per level
    return f"{op}({', '.join(describe_assets(e) for e in items)})"


def asset_uris(expr: Any) -> Iterator[str]:
    """Every URI in an IR Asset expression, depth first."""
    if isinstance(expr, str):
        yield expr
    elif isinstance(expr, dict):
        for items in expr.values():
            for item in items:
                yield from asset_uris(item)


def item_label(item: Any, key: str) -> str:
    """The label of one mapped item: its `key` field, or the item itself."""
    return str(item.get(key, item)) if isinstance(item, dict) else str(item)


def describe_mapping(mapping: Mapping | None) -> str:
    """How a task is mapped, in words."""
    if mapping is None:
        return "not mapped"
    if mapping.over is not None:
        return f"mapped over {mapping.over}"
    return f"mapped over {mapping.arg}s: " + ", ".join(item_label(i, mapping.label) for i in mapping.items)


# --- the neutral graph ---------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    id: str
    lines: tuple[str, ...]
    shape: str  # task | branch | approval | asset


@dataclass(frozen=True)
class _Edge:
    src: str
    dst: str
    label: str = ""
    dashed: bool = False
    cluster: str | None = None  # set when the edge points at a whole DAG, not one task


@dataclass(frozen=True)
class _Cluster:
    id: str
    title: str
    nodes: tuple[_Node, ...]


@dataclass(frozen=True)
class _Graph:
    name: str
    clusters: tuple[_Cluster, ...]
    assets: tuple[_Node, ...]
    edges: tuple[_Edge, ...]


# Words Mermaid or DOT read as syntax when used as a bare id.
_RESERVED = {"end", "graph", "subgraph", "flowchart", "direction", "style", "class", "classdef", "click",
             "linkstyle", "default", "node", "edge", "digraph", "strict"}


class _Ids:
    """Stable, unique ids that are valid in both Mermaid and DOT: [A-Za-z][A-Za-z0-9_]*."""

    def __init__(self) -> None:
        self._by_key: dict[tuple, str] = {}

    def __call__(self, key: tuple, hint: str) -> str:
        if key not in self._by_key:
            base = re.sub(r"[^A-Za-z0-9_]+", "_", hint).strip("_") or "n"
            base = base if base[0].isalpha() else f"n_{base}"
            taken = set(self._by_key.values())
            candidate, n = base, 2
            while candidate in taken or candidate.lower() in _RESERVED:
                candidate, n = f"{base}_{n}", n + 1
            self._by_key[key] = candidate
        return self._by_key[key]


_SHAPES = {"branch": "branch", "approval": "approval"}


def _task_lines(task: Task) -> tuple[str, ...]:
    lines = [task.task_id]
    if task.kind in ("kubernetes_pod", "anyscale_job"):
        lines.append(f"({task.kind})")
    if task.mapping is not None:
        lines.append(f"[{describe_mapping(task.mapping)}]")
    transforms = task.params.get("transforms") if task.step == "data.extract" else None
    if transforms:  # fused into the extract (no task each): still part of the picture
        lines.append("then " + " → ".join(next(iter(t)) for t in transforms))
    if task.trigger_rule != "all_success":
        lines.append(f"⟂ {task.trigger_rule}")
    return tuple(lines)


def _build(pipeline: Pipeline) -> _Graph:
    ids = _Ids()
    assets: dict[str, _Node] = {}

    def asset(uri: str) -> str:
        if uri not in assets:
            assets[uri] = _Node(ids(("asset", uri), f"asset_{uri}"), (uri,), "asset")
        return assets[uri].id

    clusters, edges = [], []
    for dag in pipeline.dags:
        cluster_id = ids(("dag", dag.dag_id), dag.dag_id)
        node = {t.task_id: ids(("task", dag.dag_id, t.task_id), f"{dag.dag_id}__{t.task_id}") for t in dag.tasks}
        title = f"{dag.dag_id} · {describe_schedule(dag.schedule)}"
        clusters.append(_Cluster(cluster_id, title, tuple(
            _Node(node[t.task_id], _task_lines(t), _SHAPES.get(t.kind, "task")) for t in dag.tasks)))
        # Consumed Assets first, so each Asset is declared near the DAG it feeds.
        for uri in dict.fromkeys(asset_uris(dag.schedule.assets)):
            edges.append(_Edge(asset(uri), node[dag.tasks[0].task_id], dashed=True, cluster=cluster_id))
        edges += _task_edges(dag, node)
        for task in dag.tasks:
            edges += [_Edge(node[task.task_id], asset(uri), dashed=True) for uri in task.outlets]
    return _Graph(pipeline.name, tuple(clusters), tuple(assets.values()), tuple(edges))


def _task_edges(dag: Dag, node: dict[str, str]) -> list[_Edge]:
    decision = {(t.task_id, target): "always" if d == ALWAYS else d for t in dag.tasks for d, target in t.branches.items()}
    pairs = [(up, t.task_id) for t in dag.tasks for up in t.upstream]
    # A branch target is always downstream of its branch in compiled IR; draw it anyway if not.
    pairs += [pair for pair in decision if pair not in pairs]
    return [_Edge(node[src], node[dst], decision.get((src, dst), "")) for src, dst in pairs]


# --- Mermaid ---------------------------------------------------------------------------

_MERMAID_SHAPES = {"task": ('["', '"]'), "branch": ('{"', '"}'), "approval": ('{{"', '"}}'), "asset": ('[("', '")]')}


def _mermaid_text(text: str) -> str:
    # Inside a quoted label Mermaid still reads entities and HTML: escape what would be read as syntax.
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def _mermaid_node(node: _Node, indent: str) -> str:
    left, right = _MERMAID_SHAPES[node.shape]
    return f"{indent}{node.id}{left}{'<br/>'.join(_mermaid_text(line) for line in node.lines)}{right}"


def to_mermaid(pipeline: Pipeline) -> str:
    """The pipeline as a Mermaid flowchart: one subgraph per DAG, Assets between them."""
    graph = _build(pipeline)
    out = ["flowchart LR"]
    for cluster in graph.clusters:
        out.append(f'  subgraph {cluster.id} ["{_mermaid_text(cluster.title)}"]')
        out.append("    direction LR")
        out += [_mermaid_node(n, "    ") for n in cluster.nodes]
        out.append("  end")
    out += [_mermaid_node(n, "  ") for n in graph.assets]
    for edge in graph.edges:
        dst = edge.cluster or edge.dst  # Mermaid can point an edge at a subgraph itself
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        out.append(f"  {edge.src} {arrow}{label} {dst}")
    return "\n".join(out) + "\n"


# --- Graphviz DOT ------------------------------------------------------------------------

_DOT_SHAPES = {"task": 'shape=box, style=rounded', "branch": "shape=diamond", "approval": "shape=hexagon",
               "asset": "shape=cylinder"}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_node(node: _Node, indent: str) -> str:
    label = _dot_text("\n".join(node.lines)).replace("\n", "\\n")
    return f"{indent}{node.id} [label={label}, {_DOT_SHAPES[node.shape]}];"


def to_dot(pipeline: Pipeline) -> str:
    """The pipeline as a Graphviz DOT digraph: one cluster per DAG, Assets between them."""
    graph = _build(pipeline)
    out = [f"digraph {_dot_text(graph.name)} {{", "  rankdir=LR;", "  compound=true;",
           '  node [fontname="Helvetica"];']
    for cluster in graph.clusters:
        out.append(f"  subgraph cluster_{cluster.id} {{")
        out.append(f"    label={_dot_text(cluster.title)};")
        out += [_dot_node(n, "    ") for n in cluster.nodes]
        out.append("  }")
    out += [_dot_node(n, "  ") for n in graph.assets]
    for edge in graph.edges:
        attrs = []
        if edge.label:
            attrs.append(f"label={_dot_text(edge.label)}")
        if edge.dashed:
            attrs.append("style=dashed")
        if edge.cluster:  # DOT edges join nodes; lhead clips the arrow at the DAG's box
            attrs.append(f"lhead=cluster_{edge.cluster}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f"  {edge.src} -> {edge.dst}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"
