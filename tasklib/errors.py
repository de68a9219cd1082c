"""Errors a step raises when trying again cannot help."""


class PermanentFailure(Exception):
    """The run cannot succeed as it stands (no champion yet, a spec mistake): fail without retries.

    The adapter turns it into Airflow's no-retry failure; retries are for flaky networks and services.
    """
