"""The FastAPI app behind pipespec's UI plugin, mounted by Airflow's API server at `/pipespec`.

- `GET /pipelines`: every pipeline the user may read, with its spec, last gate and
  rollout decision, champion history chart and report links;
- `GET /reports/<MLflow run id>/`: the training report logged to that run (and its
  images), for a user who may read the pipeline's DAGs.

Users are Airflow's (its JWT cookie or bearer token, its auth manager). Every response
carries a Content-Security-Policy without scripts; a report is sandboxed as well, so
whatever text a spec put into it stays text. Templates autoescape; spec strings are
only ever template *values*. Imported by the API server only, on the first request
(pipespec/airflow/ui_plugin.py).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep

from pipespec.airflow.links import RUN_ID

PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
REPORT_POLICY = "sandbox; " + PAGE_POLICY
REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\.(png|svg)$")
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def create_app() -> FastAPI:
    """The app with its routes; authentication is Airflow's own (see `_readable_dag_ids`)."""
    app = FastAPI(title="pipespec", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/pipelines", response_class=HTMLResponse)
    def pipelines(request: Request, user: GetUserDep, session: SessionDep) -> HTMLResponse:
        from pipespec.airflow.ui.views import pipeline_views

        views = pipeline_views(session, _readable_dag_ids(user, session))
        page = _templates().get_template("pipelines.html").render(pipelines=views, charts=_charts(views))
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, **SECURITY_HEADERS})

    @app.get("/reports/{run_id}")
    def report_redirect(run_id: str) -> RedirectResponse:
        # Relative image paths in the report resolve under the run's folder.
        return RedirectResponse(f"{_checked(run_id)}/", status_code=307)

    @app.get("/reports/{run_id}/")
    def report(run_id: str, user: GetUserDep, session: SessionDep) -> Response:
        return _report_file(run_id, "report.html", user, session)

    @app.get("/reports/{run_id}/{name}")
    def report_image(run_id: str, name: str, user: GetUserDep, session: SessionDep) -> Response:
        if not REPORT_FILE.match(name):
            raise HTTPException(404, "no such report file")
        return _report_file(run_id, name, user, session)

    return app


def _checked(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise HTTPException(404, "no such report")
    return run_id


def _report_file(run_id: str, name: str, user: Any, session: Any) -> Response:
    from pipespec.airflow.ui.views import report_file, report_of_run

    try:
        found = report_of_run(_checked(run_id))
    except ImportError:  # an API server without pipespec[ml] has no MLflow client
        raise HTTPException(404, "reports need MLflow on the API server (pipespec[ml])") from None
    # Same answer for "no such run" and "not yours": a run id tells nobody what exists.
    if found is None or not _readable_dag_ids(user, session).intersection(
            f"{found[0]}__{stage}" for stage in ("data", "train", "inference")):
        raise HTTPException(404, "no such report")
    content = report_file(run_id, name)
    if content is None:
        raise HTTPException(404, "no report in this run")
    kind = "text/html; charset=utf-8" if name.endswith(".html") else IMAGE_TYPES[name.rsplit(".", 1)[1]]
    return Response(content, media_type=kind, headers={"Content-Security-Policy": REPORT_POLICY, **SECURITY_HEADERS})


def _readable_dag_ids(user: Any, session: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)


def _charts(views: list[Any]) -> dict[str, str]:
    """{pipeline: chart as a data URI}; none where matplotlib (pipespec[ml]) is not installed."""
    from importlib.util import find_spec

    from pipespec.airflow.ui.chart import champion_history_svg, data_uri

    if find_spec("matplotlib") is None:
        return {}

    return {view.name: data_uri(champion_history_svg(
        view.metric or "metric",
        [(p.promoted_at, p.value, p.version) for p in view.history if p.value is not None])) for view in views}


@cache
def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # autoescape always on: every value rendered here may come from a spec.
    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                       undefined=StrictUndefined)
