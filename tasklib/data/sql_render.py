"""Render a source's SQL with the run's data interval, and nothing else.

The query is Jinja in a sandbox that knows exactly two names,
`data_interval_start` and `data_interval_end`, printed as Airflow prints them
(`2026-01-01 00:00:00+00:00`: a space, not `T`, so they also compare right
against text timestamps, e.g. in SQLite). Anything else — `{{ var.value.x }}`, `{{ conn.y.password }}`, a
typo — is an error naming the variable, never a silent empty string.
"""

from __future__ import annotations

from typing import Any

from ..context import RunContext

VARIABLES = ("data_interval_start", "data_interval_end")


def render_query(query: str, ctx: RunContext, source: str) -> str:
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        template_ast = environment.parse(query)
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"source `{source}`: query template line {error.lineno}: {error.message}") from None
    used = meta.find_undeclared_variables(template_ast)
    unknown = sorted(used - set(VARIABLES))
    if unknown:
        raise ValueError(f"source `{source}`: the query uses {', '.join(f'`{{{{ {n} }}}}`' for n in unknown)}; "
                         f"only {' and '.join(f'`{{{{ {n} }}}}`' for n in VARIABLES)} are available")
    values: dict[str, Any] = {name: _airflow_str(getattr(ctx, name)) for name in VARIABLES}
    missing = sorted(name for name in used if values[name] is None)
    if missing:
        raise ValueError(f"source `{source}`: the query uses `{{{{ {missing[0]} }}}}`, "
                         "but this run has no data interval (trigger it on a schedule or with a logical date)")
    try:
        return environment.from_string(template_ast).render(values)  # type: ignore[arg-type]
    except jinja2.TemplateError as error:  # e.g. a sandbox violation
        raise ValueError(f"source `{source}`: cannot render the query: {error}") from None


def _airflow_str(iso: str | None) -> str | None:
    from datetime import datetime

    return datetime.fromisoformat(iso).isoformat(sep=" ") if iso else None
