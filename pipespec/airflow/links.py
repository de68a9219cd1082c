"""Extra links on pipespec's tasks: the MLflow run, the model version, the report, the dataset.

Airflow 3 evaluates a link once, in the worker, when the task finishes (the task
runner's `finalize`), and stores the URL in XCom for the UI. A link here reads
only what the step returned (`StepOperator.step_result`) and the pipeline's name,
and is built from pipespec's own configuration:

- `[pipespec] mlflow_ui_url` (`AIRFLOW__PIPESPEC__MLFLOW_UI_URL`), or the MLflow
  tracking URI when it is an http(s) server, for the run and model version pages;
- `[api] base_url` for the report and the Pipelines page, which the pipespec UI
  plugin serves (pipespec/airflow/ui_plugin.py); root-relative without it.

A link is http(s) or root-relative, its variable parts are checked (run ids,
version numbers) and URL-quoted: no spec string becomes a `javascript:` URL.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import quote, urlparse

from airflow.sdk import BaseOperatorLink

PLUGIN_PREFIX = "/pipespec"  # where ui_plugin mounts its FastAPI app
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION = re.compile(r"^[0-9]{1,9}$")


def safe_link(url: str) -> bool:
    """An absolute http(s) URL with a host, or a path on Airflow's own origin; nothing else."""
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname) and "@" not in parsed.netloc


def _base(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip().rstrip("/")
    return url if safe_link(url) and not url.startswith("/") else None


def mlflow_ui_url() -> str | None:
    """The MLflow UI, from pipespec's config or an http(s) tracking URI; None when there is none."""
    from airflow.configuration import conf

    from pipespec.tasklib.model.registry import tracking_uri

    return _base(conf.get("pipespec", "mlflow_ui_url", fallback=None)) or _base(tracking_uri())


def airflow_url() -> str:
    """Airflow's public base URL (`[api] base_url`), or "" for links relative to the page's origin."""
    from airflow.configuration import conf

    return _base(conf.get("api", "base_url", fallback=None)) or ""


def report_path(run_id: str) -> str:
    """Where the UI plugin serves the report logged to an MLflow run."""
    return f"{PLUGIN_PREFIX}/reports/{quote(run_id, safe='')}"


def pipeline_path(pipeline: str) -> str:
    """A pipeline's section of the Pipelines page."""
    return f"{PLUGIN_PREFIX}/pipelines#pipeline-{quote(pipeline, safe='')}"


class StepLink(BaseOperatorLink):
    """A link computed from the step's result; "" (no link) where the step has nothing to show."""

    name: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = getattr(operator, "step_result", None)
        kwargs = getattr(operator, "op_kwargs", None) or {}
        params = kwargs.get("step_params") or {}
        pipeline = params.get("pipeline")
        if not isinstance(result, dict) or not isinstance(pipeline, str):
            return ""
        url = self.url(kwargs.get("step", ""), pipeline, result, kwargs.get("inputs") or {})
        return url if url and safe_link(url) else ""

    def url(self, step: str, pipeline: str, result: dict, inputs: dict) -> str | None:
        raise NotImplementedError


def _run_id(result: dict) -> str | None:
    run_id = result.get("mlflow_run_id") or result.get("run_id")
    return run_id if isinstance(run_id, str) and RUN_ID.match(run_id) else None


def _model_version(result: dict, inputs: dict) -> str | None:
    scores = inputs.get("scores") if isinstance(inputs.get("scores"), dict) else {}
    for value in (result.get("version"), result.get("challenger_version"), result.get("model_version"),
                  scores.get("challenger_version")):
        if value is not None and VERSION.match(str(value)):
            return str(value)
    return None


class MlflowRunLink(StepLink):
    """The MLflow run that trained the model (train, load_champion) or holds the report."""

    name = "MLflow run"

    def url(self, step: str, pipeline: str, result: dict, inputs: dict) -> str | None:
        ui, run_id = mlflow_ui_url(), _run_id(result)
        return f"{ui}/#/runs/{quote(run_id, safe='')}" if ui and run_id else None


class ModelVersionLink(StepLink):
    """The registered model version the step trained, scored, rolled out or served."""

    name = "Model version"

    def url(self, step: str, pipeline: str, result: dict, inputs: dict) -> str | None:
        ui, version = mlflow_ui_url(), _model_version(result, inputs)
        return f"{ui}/#/models/{quote(pipeline, safe='')}/versions/{version}" if ui and version else None


class ReportLink(StepLink):
    """The training report (champion vs challenger), served by the pipespec UI plugin."""

    name = "Report"

    def url(self, step: str, pipeline: str, result: dict, inputs: dict) -> str | None:
        run_id = _run_id(result) if step == "report.write" else None
        return airflow_url() + report_path(run_id) if run_id else None


class DatasetLink(StepLink):
    """The published dataset or predictions: the pipeline on the Pipelines page, with its latest publications."""

    name = "Dataset"

    def url(self, step: str, pipeline: str, result: dict, inputs: dict) -> str | None:
        published = step in ("data.publish", "inference.publish") and result.get("uri")
        return airflow_url() + pipeline_path(pipeline) if published else None


STEP_LINKS = (MlflowRunLink(), ModelVersionLink(), ReportLink(), DatasetLink())
_RUN, _VERSION, _REPORT, _DATASET = STEP_LINKS
# Which links a step's result can fill. Airflow stores every declared link of a task instance
# (one XCom each), so a task declares only these; a mapped task's class declares all four.
LINKS_OF_STEP: dict[str, tuple[StepLink, ...]] = {
    "model.train": (_RUN, _VERSION),
    "model.evaluate": (_VERSION,),
    "rollout.shadow": (_VERSION,), "rollout.canary": (_VERSION,), "rollout.promote": (_VERSION,),
    "rollout.reject": (_VERSION,),
    "report.write": (_RUN, _VERSION, _REPORT),
    "inference.load_champion": (_RUN, _VERSION),
    "inference.predict": (_VERSION,),
    "data.publish": (_DATASET,), "inference.publish": (_DATASET,),
}


def links_of_step(step: Any) -> tuple[StepLink, ...]:
    """The extra links a task running `step` shows."""
    return LINKS_OF_STEP.get(step, ()) if isinstance(step, str) else ()
