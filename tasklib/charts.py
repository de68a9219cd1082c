"""The training report's charts, drawn by matplotlib (headless, Agg) as PNG bytes.

Each function returns one PNG, or None when there is nothing to draw; the report
embeds them as data URIs and logs the same files on the MLflow run. Labels are
drawn as text by matplotlib (never interpreted as markup: mathtext is off).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

CHAMPION_COLOUR, CHALLENGER_COLOUR = "#9aa5b1", "#2563eb"
DPI = 110


def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display; a no-op once pyplot is loaded with Agg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0] if columns > 1 else figure.subplots()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plain(text: Any) -> str:
    """Text matplotlib draws verbatim: `$` would start mathtext."""
    return str(text).replace("$", r"\$")


def metric_bars(rows: Sequence[dict]) -> bytes | None:
    """Champion vs challenger, one pair of horizontal bars per metric (values written beside them)."""
    rows = [r for r in rows if r["challenger"] is not None or r["champion"] is not None]
    if not rows:
        return None
    figure, axes = _figure(6.4, max(2.0, 0.9 + 0.55 * len(rows)))
    positions = range(len(rows))
    for offset, side, colour in ((0.2, "champion", CHAMPION_COLOUR), (-0.2, "challenger", CHALLENGER_COLOUR)):
        values = [r[side] or 0.0 for r in rows]
        bars = axes.barh([p + offset for p in positions], values, height=0.38, color=colour, label=side)
        axes.bar_label(bars, labels=["—" if r[side] is None else f"{r[side]:.4f}" for r in rows],
                       padding=3, fontsize=8)
    axes.set_yticks(list(positions), [_plain(r["metric"]) for r in rows])
    axes.invert_yaxis()
    axes.margins(x=0.18)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=8, frameon=False)
    axes.set_title("Champion vs challenger on the holdout", fontsize=10)
    return _png(figure)


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> bytes | None:
    """The confusion matrix (rows: true label, columns: predicted), counts in the cells."""
    if not labels:
        return None
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(3.6, 0.6 * len(labels) + 2.2)
    figure, axes = _figure(size, size * 0.85)
    display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=[_plain(label) for label in labels])
    display.plot(ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45 if len(labels) > 4 else "horizontal")
    axes.set_title(_plain(title), fontsize=10)
    return _png(figure)


def training_curves(history: dict[str, Sequence[float]]) -> bytes | None:
    """Loss and every other metric Keras recorded, per epoch (one panel for loss, one for the rest)."""
    curves = {name: list(values) for name, values in history.items() if values}
    if not curves:
        return None
    others = {name: values for name, values in curves.items() if "loss" not in name}
    losses = {name: values for name, values in curves.items() if "loss" in name}
    panels = [p for p in (losses, others) if p]
    figure, axes = _figure(6.4, 3.0, columns=len(panels))
    axes = list(axes) if len(panels) > 1 else [axes]
    for panel, ax in zip(panels, axes):
        for name, values in panel.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=_plain(name))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title("Training curves", fontsize=10)
    return _png(figure)


def drift_bars(drift: dict[str, float], threshold_text: str = "") -> bytes | None:
    """The drift statistic of each monitored column."""
    if not drift:
        return None
    figure, axes = _figure(6.4, max(2.0, 0.8 + 0.45 * len(drift)))
    names = list(drift)
    bars = axes.barh(range(len(names)), [drift[n] for n in names], height=0.5, color="#f59e0b")
    axes.bar_label(bars, labels=[f"{drift[n]:.4f}" for n in names], padding=3, fontsize=8)
    axes.set_yticks(range(len(names)), [_plain(n) for n in names])
    axes.invert_yaxis()
    axes.margins(x=0.18)
    axes.set_title(_plain(f"Drift against the previous publication{threshold_text}"), fontsize=10)
    return _png(figure)
