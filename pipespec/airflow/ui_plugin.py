"""pipespec's Airflow UI plugin (registered through the `airflow.plugins` entry point).

- a "Pipelines" entry in Airflow's navigation (an external view, shown in Airflow's UI)
  whose page, and the reports it links to, the FastAPI app in pipespec/airflow/ui/app.py
  serves at `/pipespec`;
- the extra links on pipespec's tasks are declared by the operator itself
  (pipespec/airflow/links.py), so Airflow 3 stores them with each task instance.

Airflow imports plugins in every process; this module imports nothing heavy, and the app
is built on its first request, in the API server.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from pipespec.airflow.links import PLUGIN_PREFIX


class LazyApp:
    """An ASGI app that builds pipespec's FastAPI app on its first request."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await _app()(scope, receive, send)


@cache
def _app() -> Any:
    from pipespec.airflow.ui.app import create_app

    return create_app()


class PipespecUiPlugin(AirflowPlugin):
    """pipespec's pages and links in Airflow's UI."""

    name = "pipespec"
    fastapi_apps = [{"name": "pipespec", "app": LazyApp(), "url_prefix": PLUGIN_PREFIX}]
    external_views = [{"name": "Pipelines", "href": f"{PLUGIN_PREFIX}/pipelines", "destination": "nav",
                       "url_route": "pipespec-pipelines", "category": "browse"}]
