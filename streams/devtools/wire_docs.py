"""docs/wire-contract.md, generated from the published contract: the AsyncAPI document
(``schemas/asyncapi.yaml``: topics, keys, the dead-letter headers, policy versions) and the
JSON Schema of every record (``schemas/json/<Model>.schema.json``: fields, types, limits).

``python -m streams.devtools.docs`` writes the page; a unit test fails when it drifts.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from schemas.export import ASYNCAPI_PATH, SCHEMA_DIR

_ROOT = Path(__file__).resolve().parents[2]
#: Enumerations longer than this are listed under their table rather than in it.
_INLINE_ENUM = 6


def _rel(path: Path) -> str:
    """A repository file as the page links to it (the page is in docs/)."""
    return "../" + path.resolve().relative_to(_ROOT).as_posix()


def _prose(text: str | None) -> str:
    """A description as one line of Markdown: reST literals and roles made Markdown."""
    text = " ".join((text or "").split())
    text = re.sub(r":[a-z]+:`([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return text.replace("|", "\\|")


def _paragraph(text: str) -> str:
    """Prose wrapped as the hand-written pages are."""
    return textwrap.fill(text, 96, break_long_words=False, break_on_hyphens=False)


def _anchor(name: str) -> str:
    return f"[`{name}`](#{name.lower()})"


def _number_range(schema: dict[str, Any]) -> str:
    low = (
        f"> {schema['exclusiveMinimum']:,}"
        if "exclusiveMinimum" in schema
        else (f"≥ {schema['minimum']:,}" if "minimum" in schema else "")
    )
    high = f"≤ {schema['maximum']:,}" if "maximum" in schema else ""
    return ", ".join(part for part in (low, high) if part)


def _label(field: str, about: str | None) -> str:
    if not about:
        return f"`{field}`"
    about = _prose(about).rstrip(".")
    return f"`{field}` — {about[:1].lower()}{about[1:]}"


class _Notes:
    """What does not fit in a table cell: patterns and long enumerations, per field."""

    def __init__(self) -> None:
        self.patterns: dict[str, list[str]] = {}
        self.enums: dict[str, list[str]] = {}

    def pattern(self, field: str, pattern: str) -> str:
        fields = self.patterns.setdefault(pattern, [])
        if field not in fields:
            fields.append(field)
        return "pattern below"

    def lines(self) -> list[str]:
        lines = []
        for values, fields in self.enums.items():
            lines.append(f"* {', '.join(fields)}: one of `{values}`")
        for pattern, fields in self.patterns.items():
            lines.append(f"* {', '.join(fields)}: pattern `{pattern}`")
        return ["", *lines] if lines else []


def _type(schema: dict[str, Any], field: str, notes: _Notes, about: str | None = None) -> str:
    """A schema as a short phrase: type, format, limits, enumeration, reference."""
    if "$ref" in schema:
        return _anchor(schema["$ref"].rsplit("/", 1)[1])
    if "anyOf" in schema:
        # Options inherit what the schema around them says (a type, a pattern they narrow).
        around = {k: v for k, v in schema.items() if k not in ("anyOf", "description", "title")}
        phrases = [
            _type({**around, **option}, field, notes, option.get("description"))
            for option in schema["anyOf"]
        ]
        return " or ".join(dict.fromkeys(phrases))
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}, field, notes) for k in kind)
    parts = [kind]
    if "enum" in schema:
        values = schema["enum"]
        if len(values) <= _INLINE_ENUM:
            parts = ["one of " + ", ".join(f"`{v}`" for v in values)]
        else:
            joined = "`, `".join(values)
            notes.enums.setdefault(joined, []).append(_label(field, about))
            parts = [f"one of {len(values)} codes below"]
    if kind == "string":
        if "format" in schema:
            parts[0] = f"string, `{schema['format']}`"
        if "minLength" in schema or "maxLength" in schema:
            parts.append(f"{schema.get('minLength', 0)}–{schema.get('maxLength', '…')} characters")
        if "pattern" in schema and "enum" not in schema:
            parts.append(notes.pattern(_label(field, about), schema["pattern"]))
    elif kind in ("number", "integer"):
        if limits := _number_range(schema):
            parts.append(limits)
    elif kind == "array" and "items" in schema:
        parts = ["array of " + _type(schema["items"], field, notes)]
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        parts = ["object of " + _type(schema["additionalProperties"], field, notes)]
    return ", ".join(parts)


def _fields(schema: dict[str, Any]) -> list[str]:
    """A table of an object schema's fields, and the notes under it."""
    notes = _Notes()
    required = set(schema.get("required", []))
    lines = ["| field | required | type | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        needed = "yes" if name in required else "no"
        if "default" in prop:
            needed += f" (default `{json.dumps(prop['default'])}`)"
        description = prop.get("description")
        if description is None and "anyOf" in prop:
            described = [o["description"] for o in prop["anyOf"] if "description" in o]
            description = "; ".join(described) or None
        lines.append(
            f"| `{name}` | {needed} | {_type(prop, name, notes)} | {_prose(description)} |"
        )
    return lines + notes.lines()


def _record_files() -> dict[str, dict[str, Any]]:
    """The published JSON Schema of every record, by name."""
    return {
        path.name.removesuffix(".schema.json"): json.loads(path.read_text())
        for path in sorted(SCHEMA_DIR.glob("*.schema.json"))
    }


def _side(schema: dict[str, Any]) -> str:
    comment = schema.get("$comment", "")
    return "what creditline writes" if "writes" in comment else "what creditline accepts"


def _topics(doc: dict[str, Any]) -> list[str]:
    actions = {
        op["channel"]["$ref"].rsplit("/", 1)[1]: op["action"] for op in doc["operations"].values()
    }
    lines = [
        "| topic (default name) | creditline | record | key | partitions, retention |",
        "|---|---|---|---|---|",
    ]
    for name, channel in doc["channels"].items():
        kafka = channel["bindings"]["kafka"]
        config = kafka.get("topicConfiguration", {})
        retention_ms = config.get("retention.ms", -1)
        retention = "for ever" if retention_ms == -1 else f"{retention_ms / 86_400_000:g} days"
        if "compact" in config.get("cleanup.policy", []):
            retention = "compacted"
        messages = list(channel["messages"])
        key = doc["components"]["messages"][messages[0]]["bindings"]["kafka"]["key"]
        about_key = key.get("description", "")
        key_text = "`user_id`" if "user_id" in about_key else _prose(about_key)
        lines.append(
            f"| `{channel['address']}` | {'reads' if actions[name] == 'receive' else 'writes'} | "
            f"{', '.join(_anchor(m) for m in messages)} | {key_text} | "
            f"{kafka['partitions']}, {retention} |"
        )
    return lines


def _dead_letter(doc: dict[str, Any]) -> list[str]:
    message = doc["components"]["messages"]["DeadLetter"]
    headers = message["headers"]
    required = headers.get("required", [])
    lines = [
        "### DeadLetter",
        "",
        _paragraph(
            f"On `{doc['channels']['deadLetter']['address']}`: {_prose(message['summary'])} "
            f"Value: {_prose(message['payload']['description'])} "
            f"Headers: {_prose(headers['description'])}"
        ),
        "",
        "| header | always | description |",
        "|---|---|---|",
    ]
    for name, header in headers["properties"].items():
        always = "yes" if name in required else "no"
        lines.append(f"| `{name}` | {always} | {_prose(header.get('description'))} |")
    for pattern, header in headers.get("patternProperties", {}).items():
        lines.append(f"| `{pattern}` (pattern) | no | {_prose(header.get('description'))} |")
    return lines


def wire_contract_markdown() -> str:
    """The whole of docs/wire-contract.md."""
    doc = yaml.safe_load(ASYNCAPI_PATH.read_text())
    records = _record_files()
    components = doc["components"]["schemas"]
    lines = [
        "# Wire contract reference",
        "",
        "<!-- Generated from schemas/asyncapi.yaml and schemas/json/ by\n"
        "     `python -m streams.devtools.docs`; a unit test fails when this page drifts. -->",
        "",
        _paragraph(
            f"Contract version **`{doc['info']['version']}`** (the AsyncAPI document's "
            f"`info.version`). {_prose(doc['info']['description'])}"
        ),
        "",
        _paragraph(
            f"Generated from the AsyncAPI {doc['asyncapi']} document "
            f"[`schemas/asyncapi.yaml`]({_rel(ASYNCAPI_PATH)}) and the JSON Schema (Draft "
            "2020-12) of each record (`schemas/json/`). How to validate records with your own "
            "tools, what only creditline checks, examples and how versions change: "
            "[Validation and versions](contract.md)."
        ),
        "",
        "## Topics",
        "",
        "Default names, partitions and retention: each is a setting "
        "([Configuration](configuration.md)).",
        "",
        *_topics(doc),
        "",
        "## Records",
        "",
    ]
    for channel in doc["channels"].values():
        for message_name in channel["messages"]:
            payload = doc["components"]["messages"][message_name].get("payload", {})
            name = payload.get("$ref", "").rsplit("/", 1)[-1]
            if name not in records:
                continue  # the dead letters and policy versions, below
            # The AsyncAPI document holds the same schemas, in the models' field order.
            schema, path = components[name], SCHEMA_DIR / f"{name}.schema.json"
            assert set(schema["properties"]) == set(records[name]["properties"]), name
            lines += [
                f"### {name}",
                "",
                _paragraph(
                    f"On `{channel['address']}`: {_prose(channel.get('summary'))} "
                    f"{_prose(schema.get('description'))} JSON Schema: "
                    f"[`schemas/json/{path.name}`]({_rel(path)}) ({_side(records[name])})."
                ),
                "",
                *_fields(schema),
                "",
            ]
    policy = doc["channels"]["policy"]
    lines += [*_dead_letter(doc), "", "### PolicyVersion", ""]
    lines += [
        _paragraph(
            f"On `{policy['address']}`: {_prose(policy.get('summary'))} "
            + _prose(components["PolicyVersion"]["description"])
        ),
        "",
    ]
    lines += [*_fields(components["PolicyVersion"]), ""]
    lines += ["## Shared definitions", ""]
    for name, schema in components.items():
        if name in records or name == "PolicyVersion":
            continue
        lines += [f"### {name}", "", _paragraph(_prose(schema.get("description"))), ""]
        if "enum" in schema:
            lines += ["Values: " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
        else:
            lines += [*_fields(schema), ""]
    return "\n".join(lines).rstrip() + "\n"
