"""pipespec's Airflow UI plugin (registered through the `airflow.plugins` entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class PipespecUiPlugin(AirflowPlugin):
    """pipespec's pages and links in Airflow's UI."""

    name = "pipespec"
