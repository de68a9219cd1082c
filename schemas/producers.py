"""One producer per Asset, and no Asset inside another pipeline's (DESIGN.md 4b).

A second producer would overwrite the first's runs, `_LATEST` and watermarks; an Asset nested in
another's prefix (`s3://b/churn/` and `s3://b/churn/runs/x`) puts files inside it, where a
recursive reader of the outer Asset picks them up. Used by `pipespec check` (pipespec.schemas.repo) and by
the DAG loader (pipespec.compiler.build), so it stays free of pydantic and Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

Owner = TypeVar("Owner")


@dataclass(frozen=True)
class Clash(Generic[Owner]):
    """`uri` of `owner` is the same as, or nested in, `other_uri` of `other` (another pipeline)."""

    uri: str
    owner: Owner
    other_uri: str
    other: Owner

    @property
    def same(self) -> bool:
        return _key(self.uri) == _key(self.other_uri)


def _key(uri: str) -> str:
    # `s3://b/x` and `s3://b/x/` are one folder; the trailing `/` makes prefixes match on path boundaries.
    return uri.rstrip("/") + "/"


def clashes(assets: Iterable[tuple[str, Owner, str]]) -> list[Clash[Owner]]:
    """Every pair of produced Assets (uri, owner, pipeline name) of two pipelines where one contains
    the other. Sorted keys put a prefix before everything under it: one pass with a stack,
    O(n log n) for the thousands of Assets of a large repository."""
    ordered = sorted(((_key(uri), uri, owner, pipeline) for uri, owner, pipeline in assets), key=lambda a: a[0])
    found: list[Clash[Owner]] = []
    stack: list[tuple[str, str, Owner, str]] = []  # enclosing Assets of the current one
    for item in ordered:
        key, uri, owner, pipeline = item
        while stack and not key.startswith(stack[-1][0]):
            stack.pop()
        found += [Clash(uri, owner, outer_uri, outer_owner) for _, outer_uri, outer_owner, outer_pipeline in stack
                  if outer_pipeline != pipeline]
        stack.append(item)
    return found
