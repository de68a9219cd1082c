"""The data-arrival sensor (seed 001's wait for a new archive of labelled images).

Imported only when a spec has `data.wait_for`: the amazon provider's sensor module is not free to
import, and most DAG files never need it. Spec values are data here too: the S3 key is a template
field of S3KeySensor, and `SpecValuesAreData` keeps Airflow from rendering it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

from pipespec.airflow.step_operators import SpecValuesAreData


class DataArrivalSensor(SpecValuesAreData, S3KeySensor):
    """S3KeySensor, deferrable, whose key is never rendered as a template. It waits for *new* data:
    a matching object modified after the last successful run of its DAG ended, so an archive an
    earlier run already read (or judged, when its gate blocked) does not start another run. One
    that landed while a run was going and after its extract listed the source is not lost: a
    source with `only_new` reads it, by its watermark, with the next archive."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(check_fn=arrived_since_last_success, metadata_keys=["Key", "LastModified"], **kwargs)


def arrived_since_last_success(files: list[dict[str, Any]], **context: Any) -> bool:
    """Whether any of `files` (S3 listings: Key, LastModified) arrived after the previous successful
    DAG run ended; the first run takes whatever matches."""
    since = context.get("prev_end_date_success")
    if not isinstance(since, datetime):  # no earlier success (Airflow hands a lazy proxy of None, never None itself)
        return bool(files)
    return any(_when(f.get("LastModified")) > since for f in files if f.get("LastModified") is not None)


def _when(value: Any) -> datetime:
    """A listing's LastModified: a datetime from boto3, or its text once it crossed the triggerer."""
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
