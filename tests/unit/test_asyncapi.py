"""The AsyncAPI 3.0 document: current, internally consistent, and valid for the official parser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.asyncapi import asyncapi_document, render_asyncapi
from schemas.export import ASYNCAPI_PATH
from schemas.models import CONTRACT_MODELS
from streams.settings import Settings
from streams.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tools" / "asyncapi"


def test_committed_document_is_current() -> None:
    assert ASYNCAPI_PATH.read_text() == render_asyncapi(), "run `creditline schemas export`"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_reference_resolves() -> None:
    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def test_every_topic_and_model_is_described() -> None:
    document = asyncapi_document()
    settings = Settings()
    topics = Topics.from_settings(settings)
    addresses = {c["address"] for c in document["channels"].values()}
    expected = {
        *topics.inputs,
        topics.loan_decisions,
        topics.dead_letter,
        topics.line_status,
        topics.policy,
    }
    assert addresses == expected
    assert set(CONTRACT_MODELS) <= set(document["components"]["messages"])
    for channel in document["channels"].values():
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == channel["address"]
        expected_partitions = (
            1 if channel["address"] == topics.policy else settings.topic_partitions
        )
        assert kafka["partitions"] == expected_partitions
    for message in document["components"]["messages"].values():
        assert "key" in message["bindings"]["kafka"]


def test_the_official_asyncapi_parser_accepts_it() -> None:
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").exists():
        if os.environ.get("CI"):
            pytest.fail("the AsyncAPI parser is not installed: `make install` installs it")
        pytest.skip("node or tools/asyncapi/node_modules missing (run `make install`)")
    result = subprocess.run(
        [node, str(VALIDATOR / "validate.mjs"), str(ASYNCAPI_PATH)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout
