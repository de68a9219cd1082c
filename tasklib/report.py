"""The training report: why a challenger won or lost, in one page.

Champion vs challenger on every metric that applies to the model (the decision
metric first), the outcome of the rollout, the challenger's confusion matrix and
per-class precision/recall/F1 (beside the champion's F1), the training curves per
epoch, and the data it was trained on: rows per source, new rows, drift and the
gate's decision, read back from the publication's manifest. Charts are drawn by
matplotlib (pipespec.tasklib.charts) and embedded as PNG, so the HTML page
(well-formed XML) stands alone. Written as Markdown and HTML to the run's work
area, and logged with the charts as artifacts of the challenger version's MLflow
run (`report/`), so it sits next to the model; alerts link to both.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipespec.tasklib import charts, storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import registry

log = logging.getLogger(__name__)

ARTIFACT_DIR = "report"
TRANSIENT_ALIASES = {registry.CHALLENGER, "shadow", "canary"}


@dataclass
class Evidence:
    """What the report shows beyond the scores: read from MLflow and the publication."""

    classes: dict[str, Any] = field(default_factory=dict)  # side -> evaluate's class report
    history: dict[str, list[float]] = field(default_factory=dict)  # Keras metric -> value per epoch
    data: dict[str, Any] = field(default_factory=dict)  # the training data's manifest
    run_id: str | None = None  # the challenger version's MLflow run


def write(ctx: RunContext, *, pipeline: str, metric: str, scores: dict | None = None, trained: dict | None = None,
          rules: list[dict] | None = None, combine: str = "all") -> dict:
    """Write the training report (champion vs challenger, classes, curves, data) as Markdown and HTML.

    Returns {"report_uri": the HTML page, "markdown_uri", "report_artifact": the page in MLflow,
    "markdown": a summary for alerts, "mlflow_run_id", "outcome"}. With `rules` (evaluate.decision), each
    rule's verdict is listed under the decision. A train flow with no evaluation passes `trained`
    instead of `scores`: the report then shows the registered version and its training metrics."""
    if scores is None:
        scores = train_only_scores(pipeline, metric, trained or {})
    if rules:
        scores = {**scores, "decision_rules": {"rules": rules, "combine": combine}}
    rows = metric_rows(scores, metric)
    outcome = rollout_outcome(pipeline, scores)
    evidence = gather(pipeline, scores)
    images = draw(rows, evidence)
    markdown = render_markdown(pipeline, metric, scores, rows, outcome, evidence)
    page = render_html(pipeline, metric, scores, rows, outcome, evidence, images)
    markdown_uri = storage.work_uri(ctx, pipeline, "report.md")
    report_uri = storage.work_uri(ctx, pipeline, "report.html")
    storage.write_text(markdown_uri, markdown)
    storage.write_text(report_uri, page)
    if evidence.run_id is None:
        log.warning("pipespec: %s: no challenger version in the scores, the report stays in the work area", pipeline)
    else:
        _log_to_mlflow(evidence.run_id, markdown, page, images)
    artifact = f"runs:/{evidence.run_id}/{ARTIFACT_DIR}/report.html" if evidence.run_id else None
    return {"report_uri": report_uri, "markdown_uri": markdown_uri, "report_artifact": artifact,
            "markdown": summary(metric, scores, outcome), "mlflow_run_id": evidence.run_id,
            "outcome": outcome["outcome"]}


# --- content ------------------------------------------------------------------

def train_only_scores(pipeline: str, metric: str, trained: dict) -> dict:
    """What a train-only report shows in place of evaluation: the version train registered and the
    metrics it logged on its training rows (`train_<metric>` in its MLflow run)."""
    logged = registry.client().get_run(trained["run_id"]).data.metrics if trained.get("run_id") else {}
    metrics = {name.removeprefix("train_"): value for name, value in logged.items() if name.startswith("train_")}
    return {"metric": metric, "direction": _direction(metric), "challenger_version": trained.get("version"),
            "challenger": metrics.get(metric), "scores": {"challenger": metrics}, "train_only": True,
            "rows_train": trained.get("rows_train")}


def metric_rows(scores: dict, metric: str) -> list[dict]:
    """[{metric, champion, challenger, better}] for the decision metric first, then every other measured one
    that applies to the model (a metric undefined for both versions, such as binary F1 of a 5-class
    model, is left out).

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
        if name != metric and _number(values.get("challenger")) is None and _number(values.get("champion")) is None:
            continue  # does not apply to this model
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
    if scores.get("train_only"):
        return f"{metric} on the training rows: {_fmt(challenger)}; {outcome['outcome']}"
    text = f"{metric}: challenger {_fmt(challenger)}"
    if champion is not None:
        text += f" vs champion {_fmt(champion)} ({_signed(_improvement(scores))} improvement)"
    else:
        text += " (no champion before)"
    both, decision = scores.get("scores") or {}, scores.get("decision_rules")
    if decision and both.get("challenger"):
        from pipespec.tasklib.rollout.decide import judge_rule

        text += "; " + "; ".join(judge_rule(rule, both["challenger"], both.get("champion"))["reason"]
                                 for rule in decision["rules"])
    return f"{text}; {outcome['outcome']}"


def gather(pipeline: str, scores: dict) -> Evidence:
    """The class figures (from evaluate), and from the challenger's MLflow run its training
    history and the manifest of the data it was trained on."""
    evidence = Evidence(classes={side: c for side, c in (scores.get("classes") or {}).items() if c})
    version = scores.get("challenger_version")
    if version is None:
        return evidence
    client = registry.client()
    evidence.run_id = client.get_model_version(pipeline, str(version)).run_id
    tags = client.get_run(evidence.run_id).data.tags
    evidence.data = _manifest(tags.get("pipespec.manifest"))
    with tempfile.TemporaryDirectory(prefix="pipespec-report-") as directory:
        try:
            meta = json.loads(Path(client.download_artifacts(evidence.run_id, "model/pipespec.json",
                                                             directory)).read_text())
        except Exception:  # noqa: BLE001 - a model without metadata still gets a report
            log.info("pipespec: %s v%s has no model/pipespec.json: no training curves", pipeline, version)
            meta = {}
    evidence.history = {name: [float(v) for v in values] for name, values in (meta.get("history") or {}).items()
                        if isinstance(values, list)}
    return evidence


def _manifest(tag: str | None) -> dict[str, Any]:
    """The training data's manifest: the tag train wrote, or, when that was cut to fit, the file beside the data."""
    if not tag:
        return {}
    manifest = json.loads(tag)
    data_uri = (manifest.get("data") or {}).get("uri") if isinstance(manifest.get("data"), dict) else None
    if manifest.get("truncated") and data_uri:
        try:
            text = storage.read_text(f"{data_uri.rsplit('/', 1)[0]}/manifest.json")
        except (OSError, ValueError, PermissionError):
            text = None  # gone or out of reach: show what the tag kept
        if text:
            manifest = json.loads(text)
    return manifest


def draw(rows: list[dict], evidence: Evidence) -> dict[str, bytes]:
    """The report's charts as PNG files by name; a chart with nothing to show is left out."""
    images = {"metrics.png": charts.metric_bars(rows),
              "training_curves.png": charts.training_curves(evidence.history),
              "drift.png": charts.drift_bars((evidence.data.get("measurement") or {}).get("drift") or {})}
    for side in ("challenger", "champion"):
        report = evidence.classes.get(side)
        if report:
            images[f"confusion_{side}.png"] = charts.confusion_matrix(report["labels"], report["confusion"],
                                                                      f"Confusion matrix: {side}")
    return {name: png for name, png in images.items() if png}


def data_summary(data: dict) -> dict[str, Any]:
    """Rows per source, totals, drift and the gate's decision, from a publication manifest."""
    measurement = data.get("measurement") or {}
    sources = data.get("sources") or {}
    per_source = ({name: (info or {}).get("rows") for name, info in sources.items()} if isinstance(sources, dict)
                  else dict.fromkeys(sources))
    reason = measurement.get("reason")
    return {"run_id": data.get("run_id"), "published_at": data.get("published_at"),
            "sha256": (data.get("data") or {}).get("sha256"), "uri": (data.get("data") or {}).get("uri"),
            "sources": per_source, "rows": measurement.get("rows", (data.get("data") or {}).get("rows")),
            "new_rows": measurement.get("new_rows"), "drift": measurement.get("drift") or {},
            # only where drift was measured (a drift check is configured and there was a reference)
            "drifted": ("yes" if measurement.get("drifted") else "no") if measurement.get("drift") else None,
            # a manifest exists only for published data: the gate passed, for this reason
            "gate": f"passed: {reason}" if reason else ("passed" if data else None)}


def render_markdown(pipeline: str, metric: str, scores: dict, rows: list[dict], outcome: dict,
                    evidence: Evidence | None = None) -> str:
    """The report as Markdown (tables only; the charts are in the HTML page and beside it in MLflow)."""
    evidence = evidence or Evidence()
    lines = [f"# Training report: {pipeline}", "", _versions_line(scores), "",
             "| metric | champion | challenger | change |", "|---|---:|---:|---:|"]
    for row in rows:
        mark = "" if row["better"] is None else (" better" if row["better"] else " worse")
        name = f"**{row['metric']}**" if row["metric"] == metric else row["metric"]
        lines.append(f"| {name} | {_fmt(row['champion'])} | {_fmt(row['challenger'])} | "
                     f"{_signed(row['change'])}{mark} |")
    lines += ["", "## Decision", "", *[f"- {item}" for item in _decision_items(metric, scores, outcome)], ""]
    challenger_classes = evidence.classes.get("challenger")
    if challenger_classes:
        champion_f1 = _champion_f1(evidence)
        lines += ["## Per class (challenger)", "", "| class | precision | recall | F1 | champion F1 | support |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {c['label']} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | "
                  f"{_fmt(champion_f1.get(c['label']))} | {c['support']} |" for c in challenger_classes["per_class"]]
        lines.append("")
    if evidence.history:
        lines += ["## Training", "", "| epoch | " + " | ".join(evidence.history) + " |",
                  "|---:|" + "---:|" * len(evidence.history)]
        epochs = max(len(v) for v in evidence.history.values())
        lines += [f"| {e + 1} | " + " | ".join(_fmt(v[e] if e < len(v) else None) for v in evidence.history.values())
                  + " |" for e in range(epochs)]
        lines.append("")
    if evidence.data:
        data = data_summary(evidence.data)
        lines += ["## Data", "", *[f"- {label}: {value}" for label, value in _data_items(data)], ""]
        if data["sources"]:
            lines += ["| source | rows |", "|---|---:|",
                      *[f"| {n} | {_fmt(r)} |" for n, r in data["sources"].items()], ""]
        if data["drift"]:
            lines += ["| column | drift |", "|---|---:|",
                      *[f"| {c} | {_fmt(v)} |" for c, v in data["drift"].items()], ""]
    return "\n".join(lines)


def render_html(pipeline: str, metric: str, scores: dict, rows: list[dict], outcome: dict,
                evidence: Evidence | None = None, images: dict[str, bytes] | None = None) -> str:
    """The report as a standalone HTML page (charts embedded as PNG data URIs)."""
    e = html.escape
    evidence, images = evidence or Evidence(), images or {}
    metric_table = "\n".join(
        f"<tr><td>{'<b>' + e(r['metric']) + '</b>' if r['metric'] == metric else e(r['metric'])}</td>"
        f"<td>{_fmt(r['champion'])}</td><td>{_fmt(r['challenger'])}</td>"
        f"<td class=\"{_trend(r['better'])}\">{_signed(r['change'])}</td></tr>"
        for r in rows)
    sections = [f"""<h2>Decision</h2>
<p class="outcome {e(outcome['outcome'].replace(' ', '-'))}">{e(outcome['outcome'])}</p>
<ul>{''.join(f'<li>{e(item)}</li>' for item in _decision_items(metric, scores, outcome))}</ul>
<h2>{"Training metrics" if scores.get("train_only") else "Champion vs challenger"}</h2>
<table id="metrics">
<thead><tr><th>metric</th><th>champion</th><th>challenger</th><th>change</th></tr></thead>
<tbody>
{metric_table}
</tbody></table>
{_img(images, "metrics.png", "champion vs challenger")}"""]
    challenger_classes = evidence.classes.get("challenger")
    if challenger_classes:
        champion_f1 = _champion_f1(evidence)
        per_class = "\n".join(
            f"<tr><td>{e(c['label'])}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td>"
            f"<td>{c['f1']:.4f}</td><td>{_fmt(champion_f1.get(c['label']))}</td><td>{c['support']}</td></tr>"
            for c in challenger_classes["per_class"])
        sections.append(f"""<h2>Per class</h2>
<table id="per-class">
<thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>champion F1</th><th>support</th></tr></thead>
<tbody>
{per_class}
</tbody></table>
<div class="row">{_img(images, "confusion_challenger.png", "confusion matrix of the challenger")}
{_img(images, "confusion_champion.png", "confusion matrix of the champion")}</div>""")
    if evidence.history:
        epochs = max(len(v) for v in evidence.history.values())
        final = ", ".join(f"{name} {values[-1]:.4f}" for name, values in evidence.history.items() if values)
        sections.append(f"""<h2>Training</h2>
<p>{epochs} epochs; last epoch: {e(final)}.</p>
{_img(images, "training_curves.png", "training curves")}""")
    if evidence.data:
        data = data_summary(evidence.data)
        items = "".join(f"<li>{e(label)}: {e(str(value))}</li>" for label, value in _data_items(data))
        sources = "".join(f"<tr><td>{e(str(n))}</td><td>{_fmt(r)}</td></tr>" for n, r in data["sources"].items())
        drift = "".join(f"<tr><td>{e(str(c))}</td><td>{_fmt(v)}</td></tr>" for c, v in data["drift"].items())
        sections.append(f"""<h2>Data</h2>
<ul id="data">{items}</ul>
{f'<table id="sources"><thead><tr><th>source</th><th>rows</th></tr></thead><tbody>{sources}</tbody></table>'
 if sources else ''}
{f'<table id="drift"><thead><tr><th>column</th><th>drift</th></tr></thead><tbody>{drift}</tbody></table>'
 if drift else ''}
{_img(images, "drift.png", "drift per column")}""")
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>Training report: {e(pipeline)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#1f2937}}
table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.up{{color:#15803d}}.down{{color:#b91c1c}}.outcome{{font-weight:bold;font-size:1.2em}}.promoted{{color:#15803d}}
.rejected{{color:#b91c1c}}img{{max-width:100%;margin:.5em 0}}.row{{display:flex;gap:1em;flex-wrap:wrap}}
.row img{{max-width:48%}}</style></head>
<body>
<h1>Training report: {e(pipeline)}</h1>
<p>{e(_versions_line(scores))}</p>
{body}
</body></html>
"""


def _img(images: dict[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode()
    return f'<img id="{name.removesuffix(".png").replace("_", "-")}" alt="{alt}" src="data:image/png;base64,{data}"/>'


def _versions_line(scores: dict) -> str:
    if scores.get("train_only"):
        return (f"Version {scores.get('challenger_version', '?')}, trained on {scores.get('rows_train', '?')} rows; "
                "a train-only flow (no evaluation): the metrics are on the training rows.")
    return (f"Challenger version {scores.get('challenger_version', '?')} vs champion version "
            f"{scores.get('champion_version') or '(none)'}, on {scores.get('holdout_rows', '?')} holdout rows"
            + (f" ({scores['holdout_source']})" if scores.get("holdout_source") else "") + ".")


def _decision_items(metric: str, scores: dict, outcome: dict) -> list[str]:
    if scores.get("train_only"):
        return ["No champion/challenger decision: each trained version is registered and becomes the champion.",
                f"Outcome: {outcome['text']}"]
    items = [f"Decision metric: `{metric}` ({_direction_text(scores.get('direction'))})",
             f"Improvement over the champion: {_signed(_improvement(scores))}"]
    if scores.get("min_improvement") is not None and scores.get("champion") is not None:
        items.append(f"Required improvement: {scores['min_improvement']}")
    both = scores.get("scores") or {}
    baseline = both.get("baseline")
    if baseline and baseline.get(metric) is not None:
        items.append(f"Base model (baseline) `{metric}`: {_fmt(baseline[metric])}")
    decision = scores.get("decision_rules")
    if decision and both.get("challenger"):
        from pipespec.tasklib.rollout.decide import judge_rule

        items.append(f"Rules ({decision['combine']} of {len(decision['rules'])} must improve; every floor holds):")
        items += [f"  {judge_rule(rule, both['challenger'], both.get('champion'))['reason']}"
                  for rule in decision["rules"]]
    return [*items, f"Outcome: {outcome['text']}"]


def _champion_f1(evidence: Evidence) -> dict[str, float]:
    champion = evidence.classes.get("champion") or {}
    return {c["label"]: c["f1"] for c in champion.get("per_class", [])}


def _data_items(data: dict) -> list[tuple[str, Any]]:
    labels = [("gate", "Gate"), ("rows", "Rows published"), ("new_rows", "New rows since the last publication"),
              ("drifted", "Drift beyond the threshold"), ("run_id", "Published by run"),
              ("published_at", "Published at"), ("uri", "Data"), ("sha256", "sha256")]
    return [(label, data[key]) for key, label in labels if data.get(key) is not None]


# --- storage ------------------------------------------------------------------

def _log_to_mlflow(run_id: str, markdown: str, page: str, images: dict[str, bytes]) -> None:
    """Attach the report and its charts to the challenger's MLflow run (artifacts under `report/`)."""
    with tempfile.TemporaryDirectory(prefix="pipespec-report-") as directory:
        folder = Path(directory)
        (folder / "report.md").write_text(markdown, encoding="utf-8")
        (folder / "report.html").write_text(page, encoding="utf-8")
        for name, png in images.items():
            (folder / name).write_bytes(png)
        registry.client().log_artifacts(run_id, directory, ARTIFACT_DIR)


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
