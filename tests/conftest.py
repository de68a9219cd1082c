"""Test set-up shared by every layer's tests.

Airflow reads its configuration at import: point it at a project-local, throw-away home before
any test imports it. Tests are grouped by the package they cover (tests/<layer>/) and marked:

- `airflow`: needs Airflow installed (every test under tests/airflow/ and tests/local/, and the
  tests elsewhere that render or run DAGs, marked in their modules);
- `slow`: runs real services, training or a scheduler for many seconds;
- `browser`: drives Chromium.

`make test-fast` runs `-m "not airflow and not slow and not browser"` with Airflow made
unimportable ($PIPESPEC_TEST_WITHOUT_AIRFLOW), so a missing `airflow` mark fails loudly.
"""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags" / "pipespec_dags.py")
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")  # dag-factory reports runs otherwise
os.environ.setdefault("DO_NOT_TRACK", "1")

AIRFLOW_LAYERS = {"airflow", "local"}  # tests/<layer>/ folders whose every test needs Airflow


class _NoAirflow:
    """A meta path finder that makes `import airflow` fail, for the fast run."""

    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"`{name}`: this run excludes Airflow; mark the test `airflow`")
        return None


if os.environ.get("PIPESPEC_TEST_WITHOUT_AIRFLOW") == "1":
    sys.meta_path.insert(0, _NoAirflow())
    # Every test there is marked `airflow` and deselected: not collecting them lets their modules import Airflow.
    collect_ignore = [layer for layer in AIRFLOW_LAYERS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(tests).parts
        if parts and parts[0] in AIRFLOW_LAYERS:
            item.add_marker(pytest.mark.airflow)
