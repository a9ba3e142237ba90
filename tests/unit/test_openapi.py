"""The OpenAPI 3.1 document of the HTTP decision API: current, valid, and saying what the
worker does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from schemas.export import OPENAPI_PATH, export_schemas
from schemas.http import DECISION_PATH, DECISIONS_PATH
from schemas.models import LoanDecision, LoanRequest, schema_mode
from schemas.openapi import openapi_document, render_openapi


def test_committed_document_is_current() -> None:
    assert OPENAPI_PATH.read_text() == render_openapi(), "run `creditline schemas export`"


def test_it_is_a_valid_openapi_3_1_document() -> None:
    document = yaml.safe_load(OPENAPI_PATH.read_text())
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_bodies_are_the_contract_models() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for model in (LoanRequest, LoanDecision):
        mode = schema_mode(model.__name__)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for name, definition in schema.pop("$defs").items():
            assert schemas[name] == definition
        assert schemas[model.__name__] == schema


def _statuses(operation: dict[str, Any]) -> set[str]:
    return set(operation["responses"])


def test_every_status_the_api_answers_is_documented() -> None:
    paths = openapi_document()["paths"]
    post, get = paths[DECISIONS_PATH]["post"], paths[DECISION_PATH]["get"]
    assert _statuses(post) == {"200", "409", "413", "415", "422", "429", "500", "503", "504"}
    assert _statuses(get) == {"200", "202", "404", "422", "500", "503"}
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LoanRequest"
    }
    for operation in (post, get):
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/LoanDecision"
        }
    example = post["requestBody"]["content"]["application/json"]["example"]
    LoanRequest.model_validate(example)


def test_export_writes_it_beside_the_schemas_or_into_the_directory_given(tmp_path: Path) -> None:
    assert export_schemas(check=True) == []
    stale = export_schemas(tmp_path)
    assert "openapi.yaml" in stale
    assert (tmp_path / "openapi.yaml").read_text() == render_openapi()
