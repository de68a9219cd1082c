"""The JSON Schema of a spec, generated from the models, for editors and CI."""

from __future__ import annotations

import json

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
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render_schema() -> str:
    """The JSON Schema as the text of schemas/pipeline.schema.json."""
    return json.dumps(build_schema(), indent=2, sort_keys=True) + "\n"
