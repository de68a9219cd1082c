"""The JSON Schema of a spec, generated from the models, for editors and CI."""

from __future__ import annotations

import json
from typing import Any

from pipespec.schemas import plugins
from pipespec.schemas.models import PipelineSpec

SCHEMA_ID = "https://pipespec.dev/schemas/pipeline.schema.json"


def build_schema() -> dict:
    """The spec's JSON Schema, with what only editors see: `extends` and `key+:` appends."""
    schema = PipelineSpec.model_json_schema(mode="validation")
    properties = schema["properties"]
    # `extends` is resolved before validation, but editors see it in the file.
    properties["extends"] = {
        "description": "Template(s) to inherit from, this file's values win: a team template path "
                       "(`templates/x.yaml`) or a shipped one pinned as `pipespec:<name>@<version>`.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    # `key+:` appends to an inherited list; allow it for the list-valued keys editors autocomplete.
    schema["patternProperties"] = {r"^[a-z_]+\+$": {"type": "array"}}
    for kind, definition in (("model", "Model"), ("gate", "GateRef")):
        _discriminate_params(schema["$defs"], definition, kind)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _discriminate_params(defs: dict[str, Any], definition: str, kind: str) -> None:
    """`type` lists the installed plugins of `kind`; `params` follows the chosen one's params model
    (if/then per name, which editors use to complete and check the params)."""
    names = plugins.registry().names(kind)
    target = defs[definition]
    target["properties"]["type"]["enum"] = names
    branches = []
    for name in names:
        params_schema = plugins.params_model(kind, name).model_json_schema(  # type: ignore[union-attr]
            mode="validation", ref_template=f"#/$defs/{kind}.{name}.{{model}}")
        for sub, body in params_schema.pop("$defs", {}).items():
            defs[f"{kind}.{name}.{sub}"] = body
        defs[f"{kind}.{name}"] = params_schema
        branches.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                         "then": {"properties": {"params": {"$ref": f"#/$defs/{kind}.{name}"}}}})
    if branches:
        target["allOf"] = branches


def render_schema() -> str:
    """The JSON Schema as the text of schemas/pipeline.schema.json."""
    return json.dumps(build_schema(), indent=2, sort_keys=True) + "\n"
