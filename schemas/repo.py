"""Rules across every spec in a repository: unique names, one producer per Asset,
every consumed Asset produced somewhere (or declared external), no cycles between
pipelines."""

from __future__ import annotations

from .assets import consumed, produced
from .check import CheckedSpec
from .diagnostics import Diagnostic


def check_repo(checked: list[CheckedSpec]) -> list[Diagnostic]:
    specs = [c for c in checked if c.spec is not None]
    return _unique_names(specs) + _one_producer(specs) + _assets_and_cycles(specs)


def _unique_names(specs: list[CheckedSpec]) -> list[Diagnostic]:
    first: dict[str, CheckedSpec] = {}
    out = []
    for item in specs:
        name = item.spec.pipeline  # type: ignore[union-attr]
        if name in first:
            out.append(item.at_path(("pipeline",), f"pipeline name `{name}` is already used by {first[name].display}",
                                    "pipeline names become DAG ids: choose a unique name", code="repo"))
        else:
            first[name] = item
    return out


def _one_producer(specs: list[CheckedSpec]) -> list[Diagnostic]:
    """Two producers of one Asset overwrite each other's runs, `_LATEST` and watermarks: the second
    (in check order) is the error, and names the first."""
    first: dict[str, tuple[CheckedSpec, str]] = {}
    out = []
    for item in specs:
        for uri, path in produced(item.spec):  # type: ignore[arg-type]
            key = uri.rstrip("/")  # `s3://b/x` and `s3://b/x/` are one folder
            if key not in first:
                first[key] = (item, ".".join(map(str, path)))
                continue
            owner, where = first[key]
            by = "this pipeline" if owner is item else f"pipeline `{owner.spec.pipeline}`"  # type: ignore[union-attr]
            out.append(item.at_path(path, f"`{uri}` is already produced by {by} ({owner.display}, `{where}`)",
                                    "one producer per Asset: publish to a URI of your own, and consume the "
                                    "other pipeline's Asset in a schedule or `train.dataset`", code="repo"))
    return out


def _assets_and_cycles(specs: list[CheckedSpec]) -> list[Diagnostic]:
    producers: dict[str, str] = {}
    for item in specs:
        for uri, _ in produced(item.spec):  # type: ignore[arg-type]
            producers.setdefault(uri, item.spec.pipeline)  # type: ignore[union-attr]
    out: list[Diagnostic] = []
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], tuple[CheckedSpec, tuple]] = {}
    for item in specs:
        spec = item.spec
        assert spec is not None
        for uri, path in consumed(spec):
            producer = producers.get(uri)
            if producer is None and uri not in spec.external_assets:
                out.append(item.at_path(path, f"no pipeline produces the Asset `{uri}`",
                                        "fix the URI, or list it under `external_assets:` if another system "
                                        "updates it", code="repo"))
            elif producer and producer != spec.pipeline:
                edges.setdefault(producer, set()).add(spec.pipeline)
                where.setdefault((producer, spec.pipeline), (item, path))
    for cycle in _cycles(edges):
        item, path = where[(cycle[-2], cycle[-1])]
        out.append(item.at_path(path, f"pipelines trigger each other in a cycle: {' → '.join(cycle)}",
                                "break the cycle: one of them must run on a cron or on an external Asset",
                                code="repo"))
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One representative path per cycle found by depth-first search."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "active"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "active":
                found.append(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [])
    return found
