"""Airflow's entry point: every spec under pipelines/ becomes DAGs.

Set PIPESPEC_PIPELINES to load another directory, PIPESPEC_STRICT=1 to fail
the import on any invalid spec (CI), PIPESPEC_CACHE_DIR to move the IR cache.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the dags folder is on sys.path, the project root may not be
    sys.path.insert(0, str(ROOT))

from renderer.loader import load_dags  # noqa: E402

PIPELINES = Path(os.environ.get("PIPESPEC_PIPELINES", ROOT / "pipelines"))
CACHE = Path(os.environ.get("PIPESPEC_CACHE_DIR", ROOT / ".pipespec-cache"))

load_dags(PIPELINES, globals(), CACHE)
