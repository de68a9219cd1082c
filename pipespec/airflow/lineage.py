"""OpenLineage for pipespec's steps: which datasets a step read and which it wrote.

Airflow's OpenLineage provider asks each operator for `get_openlineage_facets_on_complete`
(see step_operators.StepOperator). The answer is derived here from what the step
already returns (Refs with URIs, model versions, report URIs) and from its params,
so the graph an auditor follows is:

    sources -> extract/transform/join outputs -> curated Asset -> model version
            -> prediction shards -> predictions Asset

Dataset names follow the OpenLineage naming spec (`openlineage.client.naming`):
`s3://bucket` + key, `file` + path, `postgres://host:port` + `db.schema.table`,
`snowflake://account` + `DB.SCHEMA.TABLE`. A model version is named by its MLflow
model URI (`models:/<pipeline>/<version>`) in the registry's namespace.

Nothing here runs unless the provider is enabled (a transport is configured): the
provider then disables itself and `enabled()` is False, so runs without lineage pay
for one cached config check per task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class Data:
    """One dataset a step touched, in OpenLineage's terms."""

    namespace: str
    name: str
    rows: int | None = None
    schema: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepLineage:
    """What one step run read and wrote."""

    inputs: tuple[Data, ...] = ()
    outputs: tuple[Data, ...] = ()


def enabled() -> bool:
    """Whether Airflow's OpenLineage provider will emit events in this process."""
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    return not conf.is_disabled()


# --- naming -------------------------------------------------------------------

def uri_data(uri: str, rows: int | None = None, schema: dict[str, str] | None = None) -> Data:
    """A dataset named by URI: `s3://bucket/key` or a local `file:` path."""
    from openlineage.client.naming.dataset import S3, LocalFileSystem

    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        # A prefix (`s3://feedback/curated/`) is named without its slash, as the provider names an Asset.
        naming: Any = S3(bucket_name=parsed.netloc, object_key=parsed.path.strip("/") or "/")
    elif parsed.scheme in ("", "file"):
        naming = LocalFileSystem(path=str(Path(parsed.path).resolve()) if parsed.path else "/")
    else:
        return Data(f"{parsed.scheme}://{parsed.hostname or ''}", parsed.path or "/", rows, schema or {})
    return Data(naming.get_namespace(), naming.get_name(), rows, schema or {})


def ref_data(ref: Any) -> Data | None:
    """The dataset a step's Ref (dict with `uri`, `rows`, `schema`) names; None when it names none."""
    if not isinstance(ref, dict) or not isinstance(ref.get("uri"), str):
        return None
    schema = ref.get("schema") if isinstance(ref.get("schema"), dict) else {}
    rows = ref.get("rows") if isinstance(ref.get("rows"), int) else None
    return uri_data(ref["uri"], rows, {str(k): str(v) for k, v in schema.items()})


def model_data(pipeline: str, version: Any) -> Data | None:
    """A registered model version, in the namespace of the MLflow registry it lives in."""
    if version in (None, ""):
        return None
    return Data(registry_namespace(), f"models:/{pipeline}/{version}")


def registry_namespace() -> str:
    """`mlflow://host:port` of the tracking server, or `mlflow://<path>` of a local store; never credentials."""
    from pipespec.tasklib.model.registry import tracking_uri

    parsed = urlparse(tracking_uri())
    if parsed.hostname:
        return f"mlflow://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    return "mlflow:///" + parsed.path.lstrip("/")  # sqlite:////abs/path.db -> mlflow:///abs/path.db


Connection = Callable[[str], Any]


def source_data(source: dict, spec_dir: str, connection: Connection) -> list[Data]:
    """The datasets one spec source reads: its objects, its folder, or the tables its query names."""
    kind = source.get("type")
    if kind == "s3":
        return [uri_data(source["uri"])]
    if kind == "local":
        return [uri_data((Path(spec_dir) / source["path"]).resolve().as_uri())]
    namespace, database = _sql_location(kind, source.get("conn_id", ""), connection)
    return [Data(namespace, ".".join(part for part in (database, *table) if part))
            for table in _query_tables(source.get("query", ""), kind)] or [Data(namespace, source["name"])]


def _sql_location(kind: str | None, conn_id: str, connection: Connection) -> tuple[str, str | None]:
    """The namespace of a SQL source (`postgres://host:port`, `snowflake://account`) and its database.

    Only the host, port, database and account are read, never a login or a password."""
    try:
        conn = connection(conn_id)
    except Exception:  # noqa: BLE001 - an unreadable connection still names the source, by its id
        return f"{kind}://{conn_id}", None
    conn_type = "postgres" if conn.conn_type in ("postgres", "postgresql") else conn.conn_type
    if kind == "snowflake" or conn_type == "snowflake":
        extra = conn.extra_dejson or {}
        return f"snowflake://{extra.get('account') or conn.host or conn_id}", extra.get("database")
    if conn_type == "sqlite":
        return f"sqlite://{conn.host}", None
    port = f":{conn.port}" if conn.port else ""
    return f"{conn_type}://{conn.host}{port}", conn.schema or None


def _query_tables(query: str, kind: str | None) -> list[tuple[str | None, str]]:
    """(schema, table) of every table a query reads, by OpenLineage's own SQL parser."""
    from openlineage.common.sql import parse

    try:
        parsed = parse([query], dialect="snowflake" if kind == "snowflake" else "generic")
    except Exception:  # noqa: BLE001 - a query the parser can't read still names the source
        return []
    return [(table.schema, table.name) for table in (parsed.in_tables if parsed else [])]


# --- steps --------------------------------------------------------------------

def _present(*items: Data | None) -> tuple[Data, ...]:
    return tuple(item for item in items if item is not None)


def _refs(values: Any) -> tuple[Data, ...]:
    return _present(*(ref_data(v) for v in (values or [])))


def _version(scores: Any, key: str = "challenger_version") -> Any:
    return scores.get(key) if isinstance(scores, dict) else None


def _extract(args: dict, result: Any, connection: Connection) -> StepLineage:
    return StepLineage(tuple(source_data(args["source"], args.get("spec_dir", "."), connection)),
                       _present(ref_data(result)))


def _evaluate(args: dict, result: Any, connection: Connection) -> StepLineage:
    pipeline = args["pipeline"]
    holdout = args.get("holdout")
    return StepLineage(_present(model_data(pipeline, _version(result)),
                                model_data(pipeline, _version(result, "champion_version")),
                                uri_data(holdout) if holdout else uri_data(args["dataset"])))


def _report(args: dict, result: Any, connection: Connection) -> StepLineage:
    uri = result.get("report_uri") if isinstance(result, dict) else None
    return StepLineage(_present(model_data(args["pipeline"], _version(args.get("scores")))),
                       _present(uri_data(uri) if uri else None))


def _predict(args: dict, result: Any, connection: Connection) -> StepLineage:
    shard = args.get("shard") or {}
    return StepLineage(_present(model_data(args["pipeline"], (args.get("model") or {}).get("version")),
                                uri_data(shard["uri"]) if shard.get("uri") else None),
                       _present(ref_data(result)))


def _predictions(args: dict, result: Any, connection: Connection) -> StepLineage:
    published = isinstance(result, dict) and result.get("uri")
    return StepLineage(_refs(args.get("shards")),
                       _present(uri_data(args["output"], result.get("rows")) if published else None))


# step name -> (the step's arguments, its result, a connection lookup) -> what it read and wrote
STEPS: dict[str, Callable[[dict, Any, Connection], StepLineage]] = {
    "data.extract": _extract,
    "data.transform": lambda a, r, c: StepLineage(_present(ref_data(a.get("ref"))), _present(ref_data(r))),
    "data.join": lambda a, r, c: StepLineage(_refs(a.get("refs")), _present(ref_data(r))),
    "data.curate": lambda a, r, c: StepLineage(_refs(a.get("refs")), _present(ref_data(r))),  # join + measure
    "data.publish": lambda a, r, c: StepLineage(
        _present(ref_data(a.get("dataset"))),
        _present(uri_data(a["publishes"], r.get("rows") if isinstance(r, dict) else None))),
    "model.train": lambda a, r, c: StepLineage(
        (uri_data(a["dataset"]),), _present(model_data(a["pipeline"], (r or {}).get("version")))),
    "model.evaluate": _evaluate,
    "rollout.promote": lambda a, r, c: StepLineage(_present(model_data(a["pipeline"], _version(a.get("scores"))))),
    "report.write": _report,
    "inference.load_champion": lambda a, r, c: StepLineage(
        _present(model_data(a["pipeline"], (r or {}).get("version")))),
    "inference.predict": _predict,
    "inference.publish": _predictions,
}


def step_lineage(step: str, arguments: dict, result: Any, connection: Connection) -> StepLineage:
    """The datasets a finished step read and wrote; empty for a step that touches none (gates, alerts)."""
    derive = STEPS.get(step)
    return derive(arguments, result, connection) if derive else StepLineage()


def operator_lineage(lineage: StepLineage | None) -> Any:
    """The provider's OperatorLineage for a step's datasets (schema and row count facets where known)."""
    from airflow.providers.common.compat.openlineage.facet import (Dataset, OutputDataset,
                                                                   OutputStatisticsOutputDatasetFacet,
                                                                   SchemaDatasetFacet, SchemaDatasetFacetFields)
    from airflow.providers.openlineage.extractors import OperatorLineage

    def facets(data: Data) -> dict[str, Any]:
        if not data.schema:
            return {}
        return {"schema": SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=name, type=kind)
                                                     for name, kind in data.schema.items()])}

    if lineage is None:
        return OperatorLineage()
    inputs = [Dataset(namespace=d.namespace, name=d.name, facets=facets(d)) for d in lineage.inputs]
    outputs = [OutputDataset(namespace=d.namespace, name=d.name, facets=facets(d),
                             outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=d.rows)}
                             if d.rows is not None else {})
               for d in lineage.outputs]
    return OperatorLineage(inputs=inputs, outputs=outputs)
