"""A candidate in shadow: what its answers mean (promoted at the request's instant), which
records of the policy topic install and remove it, and how its answers are compared."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.models import InputEvent, LoanDecision, Outcome
from streams.adapters.kafka.policies import (
    SHADOW_KEY_PREFIX,
    SHADOW_STOP_KEY,
    decode_policy_record,
    policy_timeline,
    shadow_candidate,
)
from streams.core.answer import answer
from streams.core.policy import Policy, load_default_policy, policy_json
from streams.core.scorecard import load_default_scorecard, load_expert_scorecard, scorecard_json
from streams.core.shadow import Candidate, shadow_answer, switched_at
from streams.core.timeline import PolicyTimeline, advance, canonical, constant
from streams.service.shadow import compare
from tests.builders import loan_request, repayment

POLICY = load_default_policy()
FITTED = load_default_scorecard()
EXPERT = load_expert_scorecard()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HORIZON = timedelta(days=1826)


def looser(reopen_at: int = 500) -> Policy:
    status = POLICY.status.model_copy(
        update={
            "thresholds": POLICY.status.thresholds.model_copy(
                update={"close_below": reopen_at - 20, "reopen_at": reopen_at}
            )
        }
    )
    return POLICY.model_copy(update={"version": f"looser-{reopen_at}", "status": status})


def thin_history() -> list[InputEvent]:
    """Four on-time repayments and nothing else: a closed line under the default policy."""
    return canonical(
        [
            repayment(event_id=f"r{i}", occurred_at=(NOW - timedelta(days=30 * i + 3)).isoformat())
            for i in range(4)
        ]
    )


def test_the_candidate_takes_effect_at_the_request_instant_only() -> None:
    candidate = Candidate(looser(), EXPERT, since=NOW - timedelta(days=1))
    at = NOW - timedelta(hours=1)
    timelines = switched_at(constant(POLICY), at, candidate)
    assert timelines.at(at - timedelta(microseconds=1)) is POLICY
    assert timelines.at(at) == candidate.policy
    assert timelines.card_at(at - timedelta(microseconds=1)) == FITTED
    assert timelines.card_at(at) is EXPERT
    # Only the part the candidate names changes: a policy alone keeps the live cards.
    policy_only = switched_at(constant(POLICY), at, Candidate(looser(), None, since=at))
    assert policy_only.card_at(at) == FITTED


def test_a_shadow_answer_is_the_live_machine_promoted_at_that_instant() -> None:
    live = constant(POLICY)
    events = thin_history()
    request = loan_request(requested_at=NOW.isoformat(), amount="100.00")
    checkpoint = advance(events, live, NOW, HORIZON)
    live_decision = answer(request, checkpoint, live, NOW, NOW)
    assert live_decision.outcome is Outcome.DECLINED
    policy = looser()
    candidate = Candidate(policy, None, since=NOW - timedelta(days=1))
    shadow = shadow_answer(request, checkpoint, [], live, candidate, NOW, NOW, HORIZON)
    assert shadow.outcome is Outcome.APPROVED
    assert (shadow.policy_version, shadow.scorecard_version) == ("looser-500", FITTED.version)
    # ...which is what the live system answers once the candidate is promoted at that instant.
    promoted = PolicyTimeline.of(POLICY, [(NOW, policy)])
    assert answer(request, advance(events, promoted, NOW, HORIZON), promoted, NOW, NOW) == shadow
    # The same candidate as the live policy answers exactly as the live policy.
    same = Candidate(POLICY, FITTED, since=NOW)
    assert shadow_answer(request, checkpoint, [], live, same, NOW, NOW, HORIZON) == live_decision


def envelope(**fields: object) -> bytes:
    return json.dumps({"applied_at": "2026-11-01T00:00:00+00:00", **fields}).encode()


def test_shadow_records_install_and_remove_the_candidate_and_never_go_live() -> None:
    candidate_policy = looser()
    records = [
        decode_policy_record(
            0,
            (SHADOW_KEY_PREFIX + "policy").encode(),
            envelope(policy=json.loads(policy_json(candidate_policy)), applied_by="risk"),
        ),
        decode_policy_record(
            1,
            (SHADOW_KEY_PREFIX + "scorecard").encode(),
            envelope(scorecard=json.loads(scorecard_json(EXPERT))),
        ),
    ]
    assert all(r.shadow and r.valid for r in records)
    found = shadow_candidate(records)
    assert found is not None and found.label == f"policy looser-500 + scorecard {EXPERT.version}"
    assert found.installed_by is None  # the latest record's
    # A shadow record is never a live version.
    live = policy_timeline(records, POLICY, FITTED)
    assert live.versions == () and live.cards.versions == ()
    stop = decode_policy_record(2, SHADOW_STOP_KEY.encode(), envelope(stopped=True))
    assert stop.shadow and stop.stopped and stop.valid
    assert shadow_candidate([*records, stop]) is None
    again = decode_policy_record(
        3,
        (SHADOW_KEY_PREFIX + "policy").encode(),
        envelope(policy=json.loads(policy_json(candidate_policy))),
    )
    installed = shadow_candidate([*records, stop, again])
    assert installed is not None and installed.card is None  # the stop removed the card
    broken = decode_policy_record(4, (SHADOW_KEY_PREFIX + "policy").encode(), envelope(policy={}))
    assert broken.shadow and not broken.valid
    assert shadow_candidate([*records, broken]) == found


def decision(rid: str, outcome: Outcome, approved: str, at: datetime) -> LoanDecision:
    return LoanDecision(
        request_id=rid,
        user_id="u-1",
        decided_at=at,
        outcome=outcome,
        requested_amount=Decimal("500.00"),
        approved_amount=Decimal(approved),
        credit_limit=Decimal("1000.00"),
        available_limit=Decimal("1000.00"),
        score=600,
        score_as_of=at,
        effective_status="open",
        displayed_status="open",
        overrides_displayed_status=False,
        reasons=[],
        policy_version="p",
        scorer_version="s",
    )


def test_the_comparison_pairs_each_candidate_decision_with_the_live_one() -> None:
    since = NOW - timedelta(hours=1)
    live = {
        "a": decision("a", Outcome.APPROVED, "500.00", NOW),
        "b": decision("b", Outcome.DECLINED, "0.00", NOW),
        "c": decision("c", Outcome.PARTIALLY_APPROVED, "300.00", NOW),
    }
    shadow = {
        "a": decision("a", Outcome.APPROVED, "500.00", NOW),
        "b": decision("b", Outcome.APPROVED, "500.00", NOW),
        "c": decision("c", Outcome.PARTIALLY_APPROVED, "400.00", NOW),
        "d": decision("d", Outcome.DECLINED, "0.00", NOW),  # live not read yet
        "old": decision("old", Outcome.DECLINED, "0.00", since - timedelta(seconds=1)),
    }
    result = compare(live, shadow, since)
    assert (result.pairs, result.unpaired, result.disagreements) == (3, 1, 1)
    assert result.disagreeing == ["b", "c"]  # another outcome, or another amount
    doc = result.to_json()
    assert doc["approved_amount"] == {"live": "800.00", "shadow": "1400.00", "difference": "600.00"}
    assert doc["approvals"] == {"live": 2, "shadow": 3}
    assert {"live": "declined", "shadow": "approved", "requests": 1} in doc["outcomes"]  # type: ignore[operator]
