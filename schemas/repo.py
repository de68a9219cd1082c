"""Rules across every spec in a repository: unique names, one producer per Asset (none nested),
every consumed Asset produced somewhere (or declared external), no cycles between
pipelines.

The rules read only a spec's name and Assets (`SpecFacts`). Findings go to the specs being
checked; the other specs of the repository (`context`, when `pipespec check FILE...` checks a
few files, see pipespec.schemas.context) take part in every rule but are not reported on."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pipespec.schemas.assets import consumed, produced
from pipespec.schemas.check import CheckedSpec
from pipespec.schemas.diagnostics import Diagnostic, YamlPath
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.producers import clashes


@dataclass(frozen=True)
class SpecFacts:
    """What the repository rules read of a valid spec: where it is, its name and its Assets."""

    display: str
    pipeline: str
    produced: tuple[tuple[str, YamlPath], ...]
    consumed: tuple[tuple[str, YamlPath], ...]
    external: frozenset[str]

    @classmethod
    def of(cls, display: str, spec: PipelineSpec) -> SpecFacts:
        """The facts of a validated spec."""
        return cls(display, spec.pipeline, tuple(produced(spec)), tuple(consumed(spec)),
                   frozenset(spec.external_assets))


@dataclass(frozen=True)
class _Member:
    facts: SpecFacts
    checked: CheckedSpec | None  # None: context, not reported on

    def at_path(self, path: tuple, message: str, hint: str) -> Diagnostic:
        assert self.checked is not None
        return self.checked.at_path(path, message, hint, code="repo")


def check_repo(checked: list[CheckedSpec], context: Iterable[SpecFacts] = ()) -> list[Diagnostic]:
    """The repository rules over `checked` and `context`, reported on `checked` only."""
    # Context first: a checked spec that takes a name already in use is always "the second" one.
    members = [_Member(facts, None) for facts in context]
    members += [_Member(SpecFacts.of(c.display, c.spec), c) for c in checked if c.spec is not None]
    return _unique_names(members) + _one_producer(members) + _assets_and_cycles(members)


def _unique_names(members: list[_Member]) -> list[Diagnostic]:
    first: dict[str, _Member] = {}
    out = []
    for item in members:
        name = item.facts.pipeline
        if name not in first:
            first[name] = item
        elif item.checked is not None:
            out.append(item.at_path(("pipeline",), f"pipeline name `{name}` is already used by "
                                    f"{first[name].facts.display}", "pipeline names become DAG ids: choose a unique name"))
    return out


def _one_producer(members: list[_Member]) -> list[Diagnostic]:
    """One producer per Asset, and no Asset inside another pipeline's (pipespec.schemas.producers). A clash
    between two pipelines is reported on both: whichever change added it, its PR fails."""
    out = []
    for item in members:  # one pipeline producing one Asset twice
        if item.checked is None:
            continue
        seen: dict[str, str] = {}
        for uri, path in item.facts.produced:
            key = uri.rstrip("/")
            if key in seen:
                out.append(item.at_path(path, f"`{uri}` is already produced by this pipeline (`{seen[key]}`)",
                                        _ONE_PRODUCER))
            seen.setdefault(key, _dotted(path))
    assets = [(uri, (item, path), item.facts.pipeline) for item in members for uri, path in item.facts.produced]
    for clash in clashes(assets):
        inner, outer = (clash.uri, clash.owner), (clash.other_uri, clash.other)
        for (uri, (item, path)), (other_uri, (other, other_path)), relation in (
                (inner, outer, "is also produced by" if clash.same else "lies inside an Asset of"),
                (outer, inner, "is also produced by" if clash.same else "contains an Asset of")):
            if item.checked is not None:
                out.append(item.at_path(
                    path, f"`{uri}` {relation} pipeline `{other.facts.pipeline}` "
                    f"({other.facts.display}, `{_dotted(other_path)}`: `{other_uri}`)", _ONE_PRODUCER))
    return out


_ONE_PRODUCER = ("one producer per Asset, none inside another's: publish to a URI of your own, and consume "
                 "the other pipeline's Asset in a schedule or `train.dataset`")


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


def _assets_and_cycles(members: list[_Member]) -> list[Diagnostic]:
    producers: dict[str, str] = {}
    for item in members:
        for uri, _ in item.facts.produced:
            producers.setdefault(uri, item.facts.pipeline)
    out: list[Diagnostic] = []
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], tuple[_Member, tuple]] = {}
    for item in members:
        facts = item.facts
        for uri, path in facts.consumed:
            producer = producers.get(uri)
            if producer is None and uri not in facts.external:
                if item.checked is not None:
                    out.append(item.at_path(path, f"no pipeline produces the Asset `{uri}`",
                                            "fix the URI, or list it under `external_assets:` if another system "
                                            "updates it"))
            elif producer and producer != facts.pipeline:
                edges.setdefault(producer, set()).add(facts.pipeline)
                where.setdefault((producer, facts.pipeline), (item, path))
    # A search that starts at a checked pipeline ends every cycle through it on its own edge, so the
    # cycle is reported on the spec being checked even when the other specs are only context.
    checked_names = {item.facts.pipeline for item in members if item.checked is not None}
    for cycle in _cycles(edges, first=checked_names):
        item, path = where[(cycle[-2], cycle[-1])]
        if item.checked is not None:
            out.append(item.at_path(path, f"pipelines trigger each other in a cycle: {' → '.join(cycle)}",
                                    "break the cycle: one of them must run on a cron or on an external Asset"))
    return out


def _cycles(edges: dict[str, set[str]], first: Collection[str] = ()) -> list[list[str]]:
    """One representative path per cycle found by depth-first search, starting at `first`."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "active"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "active":
                found.append(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for start in sorted(edges, key=lambda name: (name not in first, name)):
        if start not in state:
            visit(start, [])
    return found
