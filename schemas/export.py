"""Generate the JSON Schema file of every wire model (``schemas/json/<Model>.schema.json``),
the AsyncAPI document of the topics and the OpenAPI document of the HTTP decision API."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.models import CONTRACT_MODELS, CONTRACT_VERSION, schema_mode

SCHEMA_DIR = Path(__file__).parent / "json"


def render_schema(name: str) -> str:
    """The JSON Schema text of one contract model, stable byte for byte."""
    mode = schema_mode(name)
    schema = CONTRACT_MODELS[name].model_json_schema(mode=mode)
    side = "what creditline writes" if mode == "serialization" else "what creditline accepts"
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:creditline:schema:{name}",
        # The version as an annotation every validator accepts (ajv's strict mode refuses
        # unknown keywords such as x-contract-version).
        "$comment": f"creditline wire contract {CONTRACT_VERSION} ({side}; docs/contract.md). "
        "Generated from schemas/models.py by `creditline schemas export`.",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.yaml"
OPENAPI_PATH = Path(__file__).parent / "openapi.yaml"


def export_schemas(directory: Path = SCHEMA_DIR, *, check: bool = False) -> list[str]:
    """Write every schema file, the AsyncAPI and the OpenAPI document (or, with ``check``,
    only list the ones that differ)."""
    from schemas.asyncapi import render_asyncapi
    from schemas.openapi import render_openapi

    directory.mkdir(parents=True, exist_ok=True)
    targets = {directory / f"{name}.schema.json": render_schema(name) for name in CONTRACT_MODELS}
    # The AsyncAPI and OpenAPI documents sit beside the schema folder in the repository;
    # exported anywhere else, they go into the directory asked for, never beside it.
    at_home = directory.resolve() == SCHEMA_DIR.resolve()
    for path, render in ((ASYNCAPI_PATH, render_asyncapi), (OPENAPI_PATH, render_openapi)):
        targets[path if at_home else directory / path.name] = render()
    stale = []
    for path, text in targets.items():
        if not path.exists() or path.read_text() != text:
            stale.append(path.name)
            if not check:
                path.write_text(text)
    return stale
