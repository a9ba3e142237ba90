"""The OpenAPI 3.1 document of the HTTP decision API, generated from the models.

``creditline schemas export`` writes ``schemas/openapi.yaml``; a test fails when it drifts.
The request body is the contract's :class:`~schemas.models.LoanRequest` (what creditline
accepts), a decision the contract's :class:`~schemas.models.LoanDecision` (what it writes),
everything else :mod:`schemas.http`'s problem documents. See docs/http-api.md.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, TypeAdapter

from schemas.http import (
    DECISION_PATH,
    DECISIONS_PATH,
    JSON_CONTENT_TYPE,
    PROBLEM_CONTENT_TYPE,
    DecisionPending,
    Problem,
)
from schemas.models import CONTRACT_VERSION, EventId, LoanDecision, LoanRequest, UserId

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
#: (model, the side of it the document describes)
_MODELS: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
    (LoanRequest, "validation"),
    (LoanDecision, "serialization"),
    (Problem, "serialization"),
    (DecisionPending, "serialization"),
]
_EXAMPLE_REQUEST = {
    "request_id": "q-9",
    "user_id": "u-42",
    "requested_at": "2026-11-28T08:00:00Z",
    "amount": "3000",
    "term_months": 12,
    "displayed_status": "closed",
}


def _schemas() -> dict[str, Any]:
    """The models' JSON Schemas (2020-12, as OpenAPI 3.1 takes them), nested definitions
    hoisted into components."""
    result: dict[str, Any] = {}
    for model, mode in _MODELS:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            assert result.setdefault(name, definition) == definition, name
        result[model.__name__] = schema
    return dict(sorted(result.items()))


def _ref(model: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=model)}


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
_LOCATION = {
    "description": "Where to ask for the decision: `/v1/decisions/{request_id}?user_id=…`.",
    "schema": {"type": "string"},
}


def _problem(description: str, *headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref("Problem")}},
    }
    known = {"Retry-After": _RETRY_AFTER, "Location": _LOCATION}
    if headers:
        response["headers"] = {name: known[name] for name in headers}
    return response


def _decision(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON_CONTENT_TYPE: {"schema": _ref("LoanDecision")}},
    }


_NOT_READY = _problem(
    "The worker cannot take the request now (`unavailable`): starting or stopping, Kafka did "
    "not take or acknowledge the request (the body says whether it may have been published), "
    "or Redis did not answer a lookup. Sending the same request again is safe.",
    "Retry-After",
)
_INTERNAL = _problem("A bug (`internal-error`); the worker logs it.")


def _post() -> dict[str, Any]:
    return {
        "operationId": "requestDecision",
        "summary": "Ask for a loan decision and wait for it",
        "description": "Publishes the loan request to the request topic (key = user_id), "
        "exactly as posted, and waits up to CREDITLINE_HTTP_DECISION_WAIT_SECONDS for its "
        "decision on the decision topic. The body is validated as the worker validates a "
        "request read from Kafka. One decision per request_id: posting a request again "
        "returns the decision already made, byte for byte.",
        "requestBody": {
            "required": True,
            "content": {
                JSON_CONTENT_TYPE: {"schema": _ref("LoanRequest"), "example": _EXAMPLE_REQUEST}
            },
        },
        "responses": {
            "200": _decision(
                "The decision, byte for byte the value of the record published on the "
                "decision topic."
            ),
            "409": _problem(
                "The request_id already answers another request of this user "
                "(`conflicting-request-id`); nothing was published.",
                "Location",
            ),
            "413": _problem(
                "The body is larger than CREDITLINE_MAX_RECORD_BYTES (`body-too-large`)."
            ),
            "415": _problem(
                "The body is not declared `application/json` (`unsupported-media-type`)."
            ),
            "422": _problem(
                "The body is not a valid loan request (`invalid-request`): `errors` names "
                "each field at fault with the dead-letter code the worker would give it."
            ),
            "429": _problem(
                "CREDITLINE_HTTP_MAX_IN_FLIGHT requests are already waiting in this worker "
                "(`busy`); nothing was published.",
                "Retry-After",
            ),
            "500": _INTERNAL,
            "503": _NOT_READY,
            "504": _problem(
                "Published, but no decision within the wait (`timeout`): `request_id` and "
                "`poll` say where to ask for it.",
                "Retry-After",
                "Location",
            ),
        },
    }


def _parameter(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": True, "description": text, "schema": schema}


def _get() -> dict[str, Any]:
    return {
        "operationId": "getDecision",
        "summary": "The decision of a request, if it has been made",
        "description": "Reads the decision remembered for the request (Redis, "
        "CREDITLINE_DECISION_RETENTION_DAYS): the bytes published on the decision topic.",
        "parameters": [
            _parameter(
                "request_id",
                "path",
                TypeAdapter(EventId).json_schema(),
                "The request's request_id.",
            ),
            _parameter(
                "user_id",
                "query",
                TypeAdapter(UserId).json_schema(),
                "The request's user_id: decisions are remembered per user.",
            ),
        ],
        "responses": {
            "200": _decision("The decision, byte for byte as published."),
            "202": {
                "description": "This worker published the request and no decision is "
                "remembered yet: ask again after Retry-After.",
                "headers": {"Retry-After": _RETRY_AFTER, "Location": _LOCATION},
                "content": {JSON_CONTENT_TYPE: {"schema": _ref("DecisionPending")}},
            },
            "404": _problem(
                "No decision is remembered for this request_id and user_id, and this worker "
                "is not waiting for one (`unknown-decision`): never requested, decided by "
                "another worker not yet, or expired."
            ),
            "422": _problem("A malformed request_id or user_id (`invalid-request`)."),
            "500": _INTERNAL,
            "503": _NOT_READY,
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document as a mapping."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "creditline decision API",
            "version": CONTRACT_VERSION,
            "description": "Synchronous loan decisions over HTTP, served by every creditline "
            "worker that answers loan requests (roles `all` and `decisions`) on its web port. "
            "Every answer still goes through Kafka: a request is published to the request "
            "topic and its decision read from the decision topic; one decision per "
            "request_id. Generated from schemas/models.py and schemas/http.py; info.version "
            "is the wire contract's version (docs/contract.md). Guide: docs/http-api.md.",
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "servers": [
            {
                "url": "http://127.0.0.1:6066",
                "description": "A local worker (CREDITLINE_WEB_HOST, CREDITLINE_WEB_PORT).",
            }
        ],
        "paths": {
            DECISIONS_PATH: {"post": _post()},
            DECISION_PATH: {"get": _get()},
        },
        "components": {"schemas": _schemas()},
    }


def render_openapi() -> str:
    """The document as YAML, stable byte for byte (no anchors: the shared parts are
    written out wherever they are used)."""
    document = json.loads(json.dumps(openapi_document()))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
