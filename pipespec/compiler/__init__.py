"""spec -> IR: a frozen, JSON-serialisable graph of registered steps. No Airflow."""
