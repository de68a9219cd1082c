"""Rules across every spec in a repository: unique names, one producer per Asset (none nested),
every consumed Asset produced somewhere (or declared external), no cycles between
pipelines."""

from __future__ import annotations

from pipespec.schemas.assets import consumed, produced
from pipespec.schemas.check import CheckedSpec
from pipespec.schemas.diagnostics import Diagnostic
from pipespec.schemas.producers import clashes


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
    """One producer per Asset, and no Asset inside another pipeline's (pipespec.schemas.producers). A clash
    between two pipelines is reported on both: whichever change added it, its PR fails."""
    out = []
    for item in specs:  # one pipeline producing one Asset twice
        seen: dict[str, str] = {}
        for uri, path in produced(item.spec):  # type: ignore[arg-type]
            key = uri.rstrip("/")
            if key in seen:
                out.append(item.at_path(path, f"`{uri}` is already produced by this pipeline (`{seen[key]}`)",
                                        _ONE_PRODUCER, code="repo"))
            seen.setdefault(key, _dotted(path))
    assets = [(uri, (item, path), item.spec.pipeline)  # type: ignore[union-attr]
              for item in specs for uri, path in produced(item.spec)]  # type: ignore[arg-type]
    for clash in clashes(assets):
        inner, outer = (clash.uri, clash.owner), (clash.other_uri, clash.other)
        for (uri, (item, path)), (other_uri, (other, other_path)), relation in (
                (inner, outer, "is also produced by" if clash.same else "lies inside an Asset of"),
                (outer, inner, "is also produced by" if clash.same else "contains an Asset of")):
            out.append(item.at_path(
                path, f"`{uri}` {relation} pipeline `{other.spec.pipeline}` "  # type: ignore[union-attr]
                f"({other.display}, `{_dotted(other_path)}`: `{other_uri}`)", _ONE_PRODUCER, code="repo"))
    return out


_ONE_PRODUCER = ("one producer per Asset, none inside another's: publish to a URI of your own, and consume "
                 "the other pipeline's Asset in a schedule or `train.dataset`")


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


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
