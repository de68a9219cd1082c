"""Fill a source's SQL with the run's data interval, and nothing else.

The query names the interval with two placeholders, `{{ data_interval_start }}` and
`{{ data_interval_end }}`, replaced as text (pipespec.schemas.data_access: no template engine runs on a
spec's query). Values are printed as Airflow prints them (`2026-01-01 00:00:00+00:00`: a space,
not `T`, so they also compare right against text timestamps, e.g. in SQLite). Any other template
syntax — `{{ var.value.x }}`, `{% for %}`, a typo — is an error, never a silent empty string.
"""

from __future__ import annotations

from pipespec.schemas.data_access import QUERY_PLACEHOLDERS, fill_query, query_placeholders, query_problem

from pipespec.tasklib.context import RunContext


def render_query(query: str, ctx: RunContext, source: str) -> str:
    """The query with the run's data interval filled in; ValueError if it cannot be."""
    problem = query_problem(query)
    if problem:
        raise ValueError(f"source `{source}`: {problem}")
    values = {name: _airflow_str(getattr(ctx, name)) for name in QUERY_PLACEHOLDERS}
    missing = sorted(name for name in query_placeholders(query) if values[name] is None)
    if missing:
        raise ValueError(f"source `{source}`: the query uses `{{{{ {missing[0]} }}}}`, "
                         "but this run has no data interval (trigger it on a schedule or with a logical date)")
    return fill_query(query, values)  # type: ignore[arg-type]


def _airflow_str(iso: str | None) -> str | None:
    from datetime import datetime

    return datetime.fromisoformat(iso).isoformat(sep=" ") if iso else None
