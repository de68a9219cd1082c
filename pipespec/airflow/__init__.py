"""The Airflow integration: IR -> airflow.sdk DAGs (the only code that knows Airflow's DAG API), the
loader, operators, the step adapter and the notifier."""
