"""Where things are in the checkout, for tests: one home for these facts."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "pipelines"
CASES = ROOT / "tests" / "cases"
SNAPSHOTS = ROOT / "tests" / "snapshots"
