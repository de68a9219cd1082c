"""`python -m pipespec.local.cluster.launch <airflow arguments>`: the `airflow` command, with one
compatibility fix applied first.

Celery 5.7 dropped `celery.backends.database.retry`, which the Celery provider in the lock
(apache-airflow-providers-celery 3.26) still imports, so its executor and `airflow celery worker`
fail to import. Until the lock pairs them again, this puts back the decorator with celery 5.6's
behaviour: retry a result-backend read up to `max_retries` (3) times on a database error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any


def _retry(fun: Callable[..., Any]) -> Callable[..., Any]:
    from sqlalchemy.exc import DatabaseError, InvalidRequestError
    from sqlalchemy.orm.exc import StaleDataError

    @functools.wraps(fun)
    def inner(*args: Any, **kwargs: Any) -> Any:
        max_retries = kwargs.pop("max_retries", 3)
        for attempt in range(1, max_retries + 1):
            try:
                return fun(*args, **kwargs)
            except (DatabaseError, InvalidRequestError, StaleDataError):
                logging.getLogger(__name__).warning("%s failed; %d tries left", fun.__name__,
                                                    max_retries - attempt, exc_info=True)
                if attempt >= max_retries:
                    raise
    return inner


def patch_celery() -> None:
    """Give `celery.backends.database` its `retry` back where it lacks it."""
    import celery.backends.database as database

    if not hasattr(database, "retry"):
        database.retry = _retry


if __name__ == "__main__":
    patch_celery()
    from airflow.__main__ import main

    main()
