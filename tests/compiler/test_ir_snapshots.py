"""IR snapshots: a change in what a spec compiles to shows up in review.

Regenerate after an intended change with `UPDATE_SNAPSHOTS=1 make test`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipespec.schemas.check import check_file
from pipespec.compiler.compile import compile_spec

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
SPECS = sorted((ROOT / "pipelines").glob("*.yaml"))
from tests.support.paths import SNAPSHOTS  # noqa: E402


def compiled(spec_file: Path) -> dict:
    checked = check_file(spec_file)
    assert checked.spec is not None, checked.diagnostics
    ir = compile_spec(checked.spec, f"pipelines/{spec_file.name}", "content-hash").to_json()
    return json.loads(json.dumps(ir))


@pytest.mark.parametrize("spec_file", SPECS, ids=[p.stem for p in SPECS])
def test_ir_matches_snapshot(spec_file):
    snapshot = SNAPSHOTS / f"{spec_file.stem}.json"
    current = compiled(spec_file)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert snapshot.exists(), f"no snapshot for {spec_file.name}: run with UPDATE_SNAPSHOTS=1"
    assert current == json.loads(snapshot.read_text())


def test_ir_round_trips_through_json():
    from pipespec.compiler.ir import Pipeline

    for spec_file in SPECS:
        data = compiled(spec_file)
        assert json.loads(json.dumps(Pipeline.from_json(data).to_json())) == data
