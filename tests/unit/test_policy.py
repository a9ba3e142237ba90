"""The policy document: the shipped default, validation that never half-applies, round trips."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.core.policy import InvalidPolicy, load_default_policy, parse_policy, policy_json

DEFAULT_TEXT = resources.files("streams.policies").joinpath("default.yaml").read_text()
#: A policy as published before scorecards were documents (a hand-set card inside).
LEGACY_TEXT = (Path(__file__).parents[1] / "data" / "policy-default-2026.11.1.yaml").read_text()


def default_doc(text: str = DEFAULT_TEXT) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def test_a_policy_published_with_a_hand_set_scorecard_stays_valid() -> None:
    legacy = parse_policy(LEGACY_TEXT)
    assert legacy.scorecard is not None and "debt_to_income" in legacy.scorecard.attributes
    # Its card is not what scores: the default policy carries none, and rules alone give edges.
    assert load_default_policy().scorecard is None
    assert "verified_assets" not in load_default_policy().feature_edges


def test_the_default_policy_is_valid_and_versioned() -> None:
    policy = load_default_policy()
    assert policy.version
    assert {s.name for s in policy.segments} == {"high_risk", "high_debt_to_income", "thin_file"}
    assert policy.exceptions[0].code == "SEGMENT_EXCEPTION_HIGH_INCOME_LOW_DEBT"


def test_json_round_trip_is_identical() -> None:
    policy = load_default_policy()
    again = parse_policy(policy_json(policy))
    assert again == policy
    assert policy_json(again) == policy_json(policy)


def mutate(path: str, value: Any) -> dict[str, Any]:
    doc = default_doc(LEGACY_TEXT if path.startswith("scorecard.") else DEFAULT_TEXT)
    target: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("version", "", "version"),
        ("status.thresholds", {"close_below": 650, "reopen_at": 600}, "reopen_at"),
        ("status.freeze", {"days_past_due_at_least": 45}, "tracked levels"),
        ("scorecard.attributes.history_length.feature", "shoe_size", "feature"),
        ("scorecard.attributes.history_length.bins", [{"below": 3, "points": 0}], "last bin"),
        (
            "scorecard.attributes.history_length.bins",
            [{"below": 6, "points": 0}, {"below": 3, "points": 1}, {"points": 2}],
            "increase",
        ),
        ("exceptions.0.segments", ["nobody"], "unknown segments"),
        ("promotions.0.ends_at", "2026-10-01T00:00:00+08:00", "ends before it starts"),
        ("promotions.0.starts_at", "2026-11-01T00:00:00", "timezone"),
        ("limits.maximum", 10, "maximum"),
        ("segments.0.when", {}, "at least one condition"),
        ("surprise", 1, "Extra inputs"),
    ],
)
def test_invalid_documents_are_rejected_with_the_reason(
    path: str, value: Any, problem: str
) -> None:
    with pytest.raises(InvalidPolicy) as info:
        parse_policy(yaml.safe_dump(mutate(path, value)))
    assert problem.lower() in str(info.value).lower()


@pytest.mark.parametrize("text", ["", "just a string", "[1, 2]", "{unclosed: [", "version: x"])
def test_garbage_is_an_invalid_policy_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidPolicy):
        parse_policy(text)


def test_every_problem_is_listed() -> None:
    doc = mutate("version", "")
    doc["limits"]["maximum"] = 1
    with pytest.raises(InvalidPolicy) as info:
        parse_policy(yaml.safe_dump(doc))
    assert len(info.value.problems) >= 2
