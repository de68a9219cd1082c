"""pipespec's pages in Airflow's UI: the Pipelines page and the reports it links to.

`app.py` is the FastAPI app the plugin (pipespec/airflow/ui_plugin.py) mounts at
`/pipespec`; `views.py` reads what a page shows (specs, Airflow metadata, the MLflow
registry); `chart.py` draws the champion history with matplotlib.
"""
