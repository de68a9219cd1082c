"""The spec language: load YAML with positions, resolve `extends`, validate (pydantic models), check
semantics and the platform policy, report diagnostics. Never imports Airflow or the task library."""
