"""Where the benches put their verdicts, so that `run_all.py` can write one table and one chart.

Each bench prints its targets as it always did (`data_throughput.print_targets`). When
`$PIPESPEC_BENCH_RESULTS` names a file (run_all sets it), each target is also appended there as one
JSON line: the bench, the target, PASS/FAIL, the measured detail and, where the target is a number,
the value, the goal and which way is better. `write_report` turns those lines into a Markdown table
and a matplotlib chart of the headroom against each goal (value/goal, or goal/value where lower is
better: 1.0 or more meets the target).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ENV = "PIPESPEC_BENCH_RESULTS"


def add(target: str, ok: bool, detail: str, value: float | None = None, goal: float | None = None,
        better: str = "higher", bench: str | None = None) -> None:
    """Append one target's verdict to `$PIPESPEC_BENCH_RESULTS` (nothing when it is unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"bench": bench or Path(sys.argv[0]).stem, "target": target, "ok": ok, "detail": detail,
           "value": value, "goal": goal, "better": better}
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """The rows appended so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def machine() -> str:
    """CPU model, cores, memory, OS and Python: what the numbers were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or platform.machine())
    memory = next((int(line.split()[1]) / 2**20 for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return (f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def headroom(row: dict[str, Any]) -> float | None:
    """value/goal (goal/value where lower is better): 1.0 or more meets the target."""
    value, goal = row.get("value"), row.get("goal")
    if value is None or goal is None or value <= 0 or goal <= 0:
        return None
    return value / goal if row.get("better", "higher") == "higher" else goal / value


def write_report(rows: list[dict[str, Any]], markdown: Path, chart: Path, header: list[str]) -> None:
    """The table (Markdown, with `header` lines above it) and the chart, side by side in `markdown`'s folder."""
    lines = [*header, "", "| bench | target | verdict | measured | headroom |", "|---|---|---|---|---|"]
    for row in rows:
        room = headroom(row)
        lines.append(f"| {row['bench']} | {row['target']} | {'PASS' if row['ok'] else '**FAIL**'} | "
                     f"{row['detail']} | {f'{room:.2f}' if room is not None else '-'} |")
    lines += ["", f"![headroom against each target]({chart.name})", ""]
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text("\n".join(lines))
    charted = [r for r in rows if headroom(r) is not None]
    if charted:
        _chart(charted, chart, header[0] if header else "")


def _chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels = [f"{r['bench']}: {r['target']}" for r in rows]
    values = [headroom(r) for r in rows]
    from matplotlib.ticker import NullFormatter

    figure, axes = plt.subplots(figsize=(14, 0.45 * len(rows) + 1.8))
    axes.barh(range(len(rows)), values, color=["#3a923a" if r["ok"] else "#c0392b" for r in rows])
    axes.axvline(1.0, color="black", linewidth=1, linestyle="--")
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlim(min(0.1, min(values) / 1.5), max(2.0, max(values) * 1.5))  # bars start at the same place
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("headroom: value/goal (goal/value where lower is better); 1 or more meets the target", fontsize=8)
    axes.set_title(title.split(", code")[0], fontsize=9)
    for index, value in enumerate(values):
        axes.annotate(f"{value:.2f}", (value, index), xytext=(3, 0), textcoords="offset points", va="center",
                      fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
