"""The data-arrival sensor (seed 001's wait for a new archive of labelled images).

Imported only when a spec has `data.wait_for`: the amazon provider's sensor module is not free to
import, and most DAG files never need it. Spec values are data here too: the S3 key is a template
field of S3KeySensor, and `SpecValuesAreData` keeps Airflow from rendering it.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

from pipespec.airflow.step_operators import SpecValuesAreData


class DataArrivalSensor(SpecValuesAreData, S3KeySensor):
    """S3KeySensor, deferrable, whose key is never rendered as a template."""
