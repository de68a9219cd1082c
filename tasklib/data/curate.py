"""`data.curate`: join the sources, then measure the joined data; the data DAG's gate, in one task.

As two tasks, join and measure each paid a task process start-up (the DAG file's parse, pyarrow's
import) and a scheduler hand-off, and measure opened again the file join had just written: about
2 s of a 1M-row run that does ~1.3 s of work (bench/scheduler_e2e.py). Both steps stay what they
were (`join.join`, `measure.measure`, tested alone); this runs them one after the other in one
process.

The result is the joined dataset's Ref (uri, rows, schema, sha256, per-source `sources` for the
manifest's lineage) with the measurement beside it (rows, new records, quality, drift, `passed`,
`reason`, and `decision`, which the DAG branches on). Where both name a field (`rows`,
`rows_by_source`) the values agree; measure's `rows_by_source` is kept (it covers key joins too).
`publish` reads it as both its dataset and its measurement.
"""

from __future__ import annotations

from typing import Any

from pipespec.tasklib.context import RunContext

from pipespec.tasklib.data.join import join as join_sources
from pipespec.tasklib.data.measure import measure


def curate(ctx: RunContext, *, pipeline: str, join: dict[str, Any], publishes: str, threshold: dict,
           quality: dict | None, drift: dict | None, refs: Any) -> dict[str, Any]:
    """Join every source's output (`refs`, one per mapped source), then count records and new records
    and check quality and drift against the last publication.

    Returns the joined dataset's reference with the measurement's fields ("passed", "reason",
    "decision": "pass" | "blocked", ...)."""
    dataset = join_sources(ctx, pipeline=pipeline, join=join, refs=refs)
    measurement = measure(ctx, pipeline=pipeline, publishes=publishes, threshold=threshold, quality=quality,
                          drift=drift, dataset=dataset)
    return {**dataset, **measurement}
