"""Scorecard documents in and out: parse and validate (every problem named), the canonical
JSON and YAML forms, and the cards shipped in ``streams/policies``."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import ValidationError

from streams.core.scorecard.checks import name_problems
from streams.core.scorecard.document import InvalidScorecard, ScorecardDocument


def _problems(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for e in error.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "scorecard"
        message = str(e["msg"]).removeprefix("Value error, ")
        problems.extend(f"{where}: {line}" for line in message.split("\n"))
    return problems


def validate_scorecard(doc: Any) -> ScorecardDocument:
    """Validate a parsed document (a mapping), or raise :class:`InvalidScorecard`."""
    if not isinstance(doc, dict):
        raise InvalidScorecard(["the document must be a mapping"])
    try:
        return ScorecardDocument.model_validate(doc)
    except ValidationError as exc:
        problems = _problems(exc)
        # The document-level rules run only once every characteristic is valid: check them
        # on the raw mapping too, so that one pass reports every problem.
        raw = doc.get("characteristics")
        if isinstance(raw, dict):
            problems += [
                f"scorecard: {p}" for p in name_problems(raw) if f"scorecard: {p}" not in problems
            ]
        raise InvalidScorecard(problems) from None


def parse_scorecard(text: str | bytes) -> ScorecardDocument:
    """Parse a YAML or JSON scorecard document, or raise :class:`InvalidScorecard` with every
    problem found."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidScorecard([f"not YAML or JSON: {exc}"]) from None
    return validate_scorecard(doc)


def scorecard_json(card: ScorecardDocument) -> str:
    """The canonical JSON form of a card (what would travel on a compacted topic)."""
    return json.dumps(
        card.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False
    )


def scorecard_yaml(card: ScorecardDocument, header: str = "") -> str:
    """The card as YAML, in document order, with an optional comment header."""
    body = yaml.safe_dump(
        card.model_dump(mode="json", exclude_none=True),
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + body


def load_scorecard(name: str) -> ScorecardDocument:
    """A card shipped in ``streams/policies`` (``scorecard-default.yaml``,
    ``scorecard-expert.yaml``)."""
    from importlib import resources

    return parse_scorecard(resources.files("streams.policies").joinpath(name).read_text())


def load_default_scorecard() -> ScorecardDocument:
    """The fitted card shipped with creditline."""
    return load_scorecard("scorecard-default.yaml")


def load_expert_scorecard() -> ScorecardDocument:
    """The hand-set card of the default policy as a document (the comparison baseline)."""
    return load_scorecard("scorecard-expert.yaml")
