"""The AsyncAPI 3.0 document of every creditline topic, generated from the models.

``creditline schemas export`` writes ``schemas/asyncapi.yaml``; a test fails when it drifts.
Channels use the default topic names and partition counts (both are settings).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import BaseModel

from schemas import dead_letter
from schemas.models import (
    CONTRACT_VERSION,
    AssetEvent,
    LineStatusChanged,
    LoanDecision,
    LoanRequest,
    RepaymentEvent,
    SpendingEvent,
    schema_mode,
)

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
_REF = "#/components/schemas/{model}"
_USER_KEY = {
    "type": "string",
    "description": "The user_id, UTF-8; the same user's records share a partition.",
    "pattern": "^[A-Za-z0-9_-]{1,64}$",
}


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """JSON Schemas of the models with nested definitions hoisted into components."""
    result: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, mode=schema_mode(model.__name__))
        for name, definition in schema.pop("$defs", {}).items():
            # A definition shared by an input and an output model is the same on both sides.
            assert result.setdefault(name, definition) == definition, name
        result[model.__name__] = schema
    return dict(sorted(result.items()))


def _policy_envelope_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "One policy version (key = version). The policy document is described "
        "in docs/policy.md and validated by streams.core.policy.Policy.",
        "required": ["policy", "applied_at"],
        "properties": {
            "policy": {"type": "object", "description": "The whole policy document."},
            "applied_at": {"type": "string", "format": "date-time"},
            "effective_from": {
                "type": "string",
                "format": "date-time",
                "description": "When the version takes effect (absent: applied_at). Every "
                "status review and decision uses the version in force at its own instant.",
            },
            "applied_by": {"type": ["string", "null"]},
            "comment": {"type": ["string", "null"]},
        },
    }


def _dead_letter_headers() -> dict[str, Any]:
    descriptions = {
        dead_letter.HEADER_ERROR_CODE: "Reject code, e.g. NOT_JSON or KEY_MISMATCH.",
        dead_letter.HEADER_ERROR_MESSAGE: "Readable reason naming the field (never its value).",
        dead_letter.HEADER_SOURCE_TOPIC: "Topic the record was read from.",
        dead_letter.HEADER_SOURCE_PARTITION: "Its partition, decimal.",
        dead_letter.HEADER_SOURCE_OFFSET: "Its offset, decimal.",
        dead_letter.HEADER_REJECTED_AT: "When it was rejected, RFC 3339.",
    }
    prefix = dead_letter.ORIGINAL_HEADER_PREFIX
    optional = {
        dead_letter.HEADER_OMITTED: "Only when the record was too large to publish whole (it "
        "arrived compressed), right after the six above: what was left out (value, key, "
        "headers) and its size, e.g. 'value:20971530'.",
    }
    return {
        "type": "object",
        "description": "The worker's headers first, then every header of the rejected record "
        f"renamed with the prefix {prefix!r} (values unchanged), so none can pass for one of "
        "the worker's.",
        "required": list(descriptions),
        "properties": {
            name: {"type": "string", "description": text}
            for name, text in (descriptions | optional).items()
        },
        "patternProperties": {
            f"^{re.escape(prefix)}": {"description": "A header of the rejected record, renamed."}
        },
    }


# (channel id, topic, message name, summary, direction for creditline, retention)
_CHANNELS = [
    (
        "repayments",
        "credit.repayments",
        "RepaymentEvent",
        "Repayments on a user's loans.",
        "receive",
        "-1",
    ),
    ("spending", "credit.spending", "SpendingEvent", "A user's purchases.", "receive", "-1"),
    (
        "assets",
        "credit.assets",
        "AssetEvent",
        "Asset and income snapshots (latest wins).",
        "receive",
        "-1",
    ),
    (
        "loanRequests",
        "credit.loan-requests",
        "LoanRequest",
        "Loan requests with the status the app displayed.",
        "receive",
        "-1",
    ),
    (
        "loanDecisions",
        "credit.loan-decisions",
        "LoanDecision",
        "Decisions from the live score, with reasons and versions.",
        "send",
        "2592000000",
    ),
    (
        "lineStatus",
        "credit.line-status",
        "LineStatusChanged",
        "Every change of a user's effective line status.",
        "send",
        "2592000000",
    ),
    (
        "deadLetter",
        "credit.dead-letter",
        "DeadLetter",
        "Rejected records: original key and value bytes, headers say why and where from.",
        "send",
        "2592000000",
    ),
    (
        "policy",
        "credit.policy",
        "PolicyVersion",
        "Credit policy versions (compacted; operators publish with `creditline policy apply`).",
        "receive",
        "-1",
    ),
]


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a mapping."""
    schemas = _schemas(
        [RepaymentEvent, SpendingEvent, AssetEvent, LoanRequest, LoanDecision, LineStatusChanged]
    )
    schemas["PolicyVersion"] = _policy_envelope_schema()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel_id, topic, message, summary, action, retention in _CHANNELS:
        partitions = 1 if channel_id == "policy" else 12
        key = (
            {"type": "string", "description": "The policy version."}
            if channel_id == "policy"
            else _USER_KEY
        )
        body: dict[str, Any] = {
            "name": message,
            "title": message,
            "summary": summary,
            "contentType": "application/json",
            "bindings": {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}},
        }
        if message == "DeadLetter":
            body["contentType"] = "application/octet-stream"
            body["payload"] = {"description": "The rejected record's value bytes, unchanged."}
            body["headers"] = _dead_letter_headers()
        else:
            body["payload"] = {"$ref": _REF.format(model=message)}
        messages[message] = body
        config: dict[str, Any] = {"retention.ms": int(retention)}
        if channel_id == "policy":
            config["cleanup.policy"] = ["compact"]
        channels[channel_id] = {
            "address": topic,
            "summary": summary,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": partitions,
                    "replicas": 1,
                    "topicConfiguration": config,
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        verb = "consume" if action == "receive" else "publish"
        operations[f"{verb}{message}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"creditline {'reads' if action == 'receive' else 'writes'} {topic}.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "creditline",
            "version": CONTRACT_VERSION,
            "description": "Real-time credit-line scorer. Every value is UTF-8 JSON keyed by "
            "user_id; money is a decimal string with 2 places (numbers accepted on input); "
            "timestamps are RFC 3339 with an offset. Generated from schemas/models.py. "
            "info.version is the wire contract's version: minor versions are additive, a "
            "major one may break (docs/contract.md).",
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local broker started by `creditline up`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render_asyncapi() -> str:
    """The document as YAML, stable byte for byte."""
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
