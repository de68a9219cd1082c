"""The training report: champion vs challenger on every metric evaluate measured,
the outcome of the rollout, and a bar chart drawn as inline SVG (no plotting
library). Written as Markdown and HTML (well-formed XML, so any XML parser can
check it) to the run's work area, and logged as artifacts of the challenger
version's MLflow run, so it sits next to the model.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import registry

log = logging.getLogger(__name__)

CHAMPION_COLOUR, CHALLENGER_COLOUR = "#9aa5b1", "#2563eb"
ARTIFACT_DIR = "report"
TRANSIENT_ALIASES = {registry.CHALLENGER, "shadow", "canary"}


def write(ctx: RunContext, *, pipeline: str, metric: str, scores: dict) -> dict:
    """Write the training report (champion vs challenger on every metric) as Markdown and HTML.

    Returns {"report_uri": the HTML page, "markdown_uri", "markdown": a summary for alerts, ...}."""
    rows = metric_rows(scores, metric)
    outcome = rollout_outcome(pipeline, scores)
    markdown = render_markdown(pipeline, metric, scores, rows, outcome)
    page = render_html(pipeline, metric, scores, rows, outcome)
    markdown_uri = storage.work_uri(ctx, pipeline, "report.md")
    report_uri = storage.work_uri(ctx, pipeline, "report.html")
    storage.write_text(markdown_uri, markdown)
    storage.write_text(report_uri, page)
    run_id = _log_to_mlflow(pipeline, scores.get("challenger_version"), markdown, page)
    return {"report_uri": report_uri, "markdown_uri": markdown_uri, "markdown": summary(metric, scores, outcome),
            "mlflow_run_id": run_id, "outcome": outcome["outcome"]}


# --- content ------------------------------------------------------------------

def metric_rows(scores: dict, metric: str) -> list[dict]:
    """[{metric, champion, challenger, better}] for the decision metric first, then every other measured one.

    `scores["scores"]` may be per model ({"challenger": {m: v}, "champion": {m: v}}),
    per metric ({m: {"challenger": v, "champion": v}}) or challenger-only ({m: v}).
    """
    detail = scores.get("scores") or {}
    table: dict[str, dict[str, Any]] = {metric: {"challenger": scores.get("challenger"),
                                                 "champion": scores.get("champion")}}
    if isinstance(detail.get("challenger"), dict):
        for side in ("challenger", "champion"):
            for name, value in (detail.get(side) or {}).items():
                table.setdefault(name, {}).setdefault(side, value)
    else:
        for name, value in detail.items():
            values = value if isinstance(value, dict) else {"challenger": value}
            for side in ("challenger", "champion"):
                table.setdefault(name, {}).setdefault(side, values.get(side))
    rows = []
    for name, values in table.items():
        challenger, champion = _number(values.get("challenger")), _number(values.get("champion"))
        direction = scores.get("direction", "max") if name == metric else _direction(name)
        change = None if challenger is None or champion is None else challenger - champion
        better = None if change is None else (change > 0 if direction == "max" else change < 0)
        rows.append({"metric": name, "champion": champion, "challenger": challenger, "change": change,
                     "direction": direction, "better": better})
    return rows


def rollout_outcome(pipeline: str, scores: dict) -> dict:
    """What the rollout did, read back from the registry (the report runs after promote or reject)."""
    version = scores.get("challenger_version")
    if version is None:
        return {"outcome": "unknown", "text": "the challenger version is not known to the report"}
    from pipespec.tasklib.rollout.stages import REJECTED_TAG

    model_version = registry.client().get_model_version(pipeline, str(version))
    serving = [a for a in model_version.aliases if a not in TRANSIENT_ALIASES and not a.startswith("previous_")]
    if serving:
        return {"outcome": "promoted", "text": f"version {version} is now `{serving[0]}`"}
    reason = model_version.tags.get(REJECTED_TAG)
    if reason:
        return {"outcome": "rejected", "text": f"version {version} was rejected: {reason}"}
    return {"outcome": "not promoted", "text": f"version {version} holds no serving alias"}


def summary(metric: str, scores: dict, outcome: dict) -> str:
    """One line: the metric for challenger and champion, the improvement and the outcome."""
    challenger, champion = scores.get("challenger"), scores.get("champion")
    text = f"{metric}: challenger {_fmt(challenger)}"
    if champion is not None:
        text += f" vs champion {_fmt(champion)} ({_signed(_improvement(scores))} improvement)"
    else:
        text += " (no champion before)"
    return f"{text}; {outcome['outcome']}"


def render_markdown(pipeline: str, metric: str, scores: dict, rows: list[dict], outcome: dict) -> str:
    """The report as Markdown."""
    lines = [f"# Training report: {pipeline}", "",
             f"Challenger version {scores.get('challenger_version', '?')} vs champion version "
             f"{scores.get('champion_version') or '(none)'}, on {scores.get('holdout_rows', '?')} holdout rows.", "",
             "| metric | champion | challenger | change |", "|---|---:|---:|---:|"]
    for row in rows:
        mark = "" if row["better"] is None else (" better" if row["better"] else " worse")
        name = f"**{row['metric']}**" if row["metric"] == metric else row["metric"]
        lines.append(f"| {name} | {_fmt(row['champion'])} | {_fmt(row['challenger'])} | "
                     f"{_signed(row['change'])}{mark} |")
    lines += ["", "## Decision", "", f"- Decision metric: `{metric}` ({_direction_text(scores.get('direction'))})",
              f"- Improvement over the champion: {_signed(_improvement(scores))}",
              f"- Outcome: {outcome['text']}", ""]
    return "\n".join(lines)


def render_html(pipeline: str, metric: str, scores: dict, rows: list[dict], outcome: dict) -> str:
    """The report as a standalone HTML page."""
    e = html.escape
    body_rows = "\n".join(
        f"<tr><td>{'<b>' + e(r['metric']) + '</b>' if r['metric'] == metric else e(r['metric'])}</td>"
        f"<td>{_fmt(r['champion'])}</td><td>{_fmt(r['challenger'])}</td>"
        f"<td class=\"{_trend(r['better'])}\">{_signed(r['change'])}</td></tr>"
        for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>Training report: {e(pipeline)}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.up{{color:#15803d}}.down{{color:#b91c1c}}</style></head>
<body>
<h1>Training report: {e(pipeline)}</h1>
<p>Challenger version {e(str(scores.get('challenger_version', '?')))} vs champion version
{e(str(scores.get('champion_version') or '(none)'))}, on {e(str(scores.get('holdout_rows', '?')))} holdout rows.</p>
<table id="metrics">
<thead><tr><th>metric</th><th>champion</th><th>challenger</th><th>change</th></tr></thead>
<tbody>
{body_rows}
</tbody></table>
<h2>Decision</h2>
<ul><li>Decision metric: <code>{e(metric)}</code> ({_direction_text(scores.get('direction'))})</li>
<li>Improvement over the champion: {_signed(_improvement(scores))}</li>
<li>Outcome: {e(outcome['text'])}</li></ul>
<h2>Champion vs challenger</h2>
{bar_chart(rows)}
</body></html>
"""


def bar_chart(rows: list[dict]) -> str:
    """Horizontal grouped bars, one group per metric; values in [0, 1] share one scale, others their own."""
    e = html.escape
    values = [abs(v) for r in rows for v in (r["champion"], r["challenger"]) if v is not None]
    unit_scale = all(v <= 1 for v in values)
    label_w, bar_max, bar_h, gap, top = 140, 380, 14, 14, 34
    height = top + len(rows) * (2 * bar_h + gap) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{height}" '
             f'viewBox="0 0 640 {height}" role="img" aria-label="champion vs challenger">',
             f'<rect x="{label_w}" y="6" width="12" height="12" fill="{CHAMPION_COLOUR}"/>',
             f'<text x="{label_w + 18}" y="16" font-size="12">champion</text>',
             f'<rect x="{label_w + 100}" y="6" width="12" height="12" fill="{CHALLENGER_COLOUR}"/>',
             f'<text x="{label_w + 118}" y="16" font-size="12">challenger</text>']
    for index, row in enumerate(rows):
        y = top + index * (2 * bar_h + gap)
        scale = 1.0 if unit_scale else max(abs(v) for v in (row["champion"], row["challenger"], 1e-12)
                                           if v is not None)
        parts.append(f'<text x="0" y="{y + bar_h + 4}" font-size="12">{e(row["metric"])}</text>')
        for offset, side, colour in ((0, "champion", CHAMPION_COLOUR), (bar_h, "challenger", CHALLENGER_COLOUR)):
            value = row[side]
            width = 0.0 if value is None else max(value, 0.0) / scale * bar_max
            parts.append(f'<rect x="{label_w}" y="{y + offset}" width="{width:.1f}" height="{bar_h - 2}" '
                         f'fill="{colour}"><title>{side}: {_fmt(value)}</title></rect>')
            parts.append(f'<text x="{label_w + width + 4:.1f}" y="{y + offset + bar_h - 3}" '
                         f'font-size="11">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# --- storage ------------------------------------------------------------------

def _log_to_mlflow(pipeline: str, version: Any, markdown: str, page: str) -> str | None:
    """Attach the report to the challenger's MLflow run (artifacts `report/report.md`, `report/report.html`)."""
    if version is None:
        log.warning("pipespec: %s: no challenger version in the scores, the report stays in the work area", pipeline)
        return None
    mlflow_client = registry.client()
    run_id = mlflow_client.get_model_version(pipeline, str(version)).run_id
    mlflow_client.log_text(run_id, markdown, f"{ARTIFACT_DIR}/report.md")
    mlflow_client.log_text(run_id, page, f"{ARTIFACT_DIR}/report.html")
    return run_id


# --- formatting -----------------------------------------------------------------

def _improvement(scores: dict) -> float | None:
    challenger, champion = _number(scores.get("challenger")), _number(scores.get("champion"))
    if challenger is None or champion is None:
        return None
    return (challenger - champion) * (-1 if scores.get("direction") == "min" else 1)


def _direction(metric: str) -> str:
    from pipespec.schemas.catalog import METRICS

    known = METRICS.get(metric)
    return known.direction if known else ("min" if metric.endswith(("loss", "rmse", "mae", "mse")) else "max")


def _direction_text(direction: str | None) -> str:
    return "lower is better" if direction == "min" else "higher is better"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _trend(better: bool | None) -> str:
    return "" if better is None else ("up" if better else "down")


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"
