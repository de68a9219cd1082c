"""The champion history chart: the decision metric of every promoted version over time."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import datetime, timedelta


def champion_history_svg(metric: str, points: Sequence[tuple[datetime, float, str]]) -> str:
    """An SVG chart of (promoted at, metric value, version), each point labelled `v<version>`."""
    from matplotlib.dates import ConciseDateFormatter
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a server's threads

    figure = Figure(figsize=(6.4, 2.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    if points:
        dates, values, versions = zip(*points)
        axes.plot(dates, values, marker="o", drawstyle="steps-post", color="#017cee")
        for date, value, version in points:
            axes.annotate(f"v{version}", (date, value), textcoords="offset points", xytext=(0, 6),
                          ha="center", fontsize=8)
        if len(points) == 1:  # one point: a week around it, not matplotlib's default of years
            axes.set_xlim(dates[0] - timedelta(days=3), dates[0] + timedelta(days=3))
        axes.xaxis.set_major_formatter(ConciseDateFormatter(axes.xaxis.get_major_locator()))
    else:
        axes.text(0.5, 0.5, "no champion yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel(metric)
    axes.set_title("champion history")
    axes.grid(alpha=0.3)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def data_uri(svg: str) -> str:
    """The chart as an `<img>` source: an image can't run script, whatever text it holds."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
