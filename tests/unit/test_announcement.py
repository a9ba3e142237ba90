"""A status-change event stated from the compiled machine's feature values is the event the
full assessment gives, byte for byte, in both languages, late or not."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import EffectiveStatus, InputEvent, LineStatusChanged
from streams.core import compiled
from streams.core.announcement import (
    StatedStanding,
    announced_standing,
    reason_json,
    status_change_event,
)
from streams.core.decision import status_reasons
from streams.core.policy import Policy
from streams.core.reasons import Language, ReasonCode, reason
from streams.core.scorecard import ScorecardTimeline
from streams.core.scoring import NO_LIMIT, Assessment, LineStatus
from streams.core.timeline import Checkpoint, PolicyTimeline, standing
from tests.properties import examples
from tests.scorecard_histories import AT, histories
from tests.unit.test_compiled_core import (
    CARDS,
    POLICY,
    _workload,
    in_batches,
    later,
    python_core,
    timelines,
)

native = pytest.importorskip("creditline_native")

PREVIOUS = LineStatus(EffectiveStatus.OPEN, AT - timedelta(days=400))


def model_event(
    previous: LineStatus | None,
    standing: Assessment,
    policy: Policy,
    language: Language,
    *,
    restated: bool,
) -> bytes:
    """The event as the contract model writes it: what :func:`status_change_event` must give."""
    reasons = status_reasons(standing, policy, language)
    if restated:
        reasons = [reason(ReasonCode.LATE_EVENT_RESTATED, language), *reasons]
    return (
        LineStatusChanged(
            user_id=standing.user_id,
            changed_at=standing.line.since,
            previous_status=previous.status if previous else None,
            status=standing.status,
            credit_limit=standing.credit_limit,
            score=standing.score,
            reasons=reasons,
            policy_version=standing.policy_version,
            scorecard_version=standing.scorecard_version,
        )
        .model_dump_json()
        .encode()
    )


def assert_same_event(checkpoint: Checkpoint, timeline: PolicyTimeline) -> str | None:
    """Both ways of stating the checkpoint's standing give the same event; returns which way
    :func:`announced_standing` took (None: no fold)."""
    stated = announced_standing(checkpoint, timeline)
    full = standing(checkpoint, timeline)
    assert (stated is None) == (full is None)
    if stated is None or full is None:
        return None
    assert (stated.at, stated.line, stated.score) == (full.at, full.line, full.score)
    assert (stated.segment, stated.exception) == (full.segment, full.exception)
    assert dict(stated.points) == dict(full.points)
    assert stated.credit_limit == full.credit_limit
    assert (stated.policy_version, stated.scorecard_version) == (
        full.policy_version,
        full.scorecard_version,
    )
    policy = timeline.at(full.at)
    for previous in (None, PREVIOUS):
        for language in ("en", "zh"):
            for restated in (False, True):
                got = status_change_event(previous, stated, policy, language, restated=restated)
                assert got == status_change_event(
                    previous, full, policy, language, restated=restated
                )
                assert got == model_event(previous, full, policy, language, restated=restated)
    return type(stated).__name__


@settings(max_examples=examples(300))
@given(histories(), later, timelines(), st.randoms(use_true_random=False))
def test_a_stated_standing_gives_the_assessed_event(
    events: list[InputEvent], until: datetime, timeline: PolicyTimeline, rng: random.Random
) -> None:
    checkpoint = in_batches(events, rng, until, timeline, stored_ledger=True)
    way = assert_same_event(checkpoint, timeline)
    line = checkpoint.trajectory.line
    if checkpoint.values is not None and line is not None:
        # Only an open line's limit needs the fold's money.
        expected = "Assessment" if line.status is EffectiveStatus.OPEN else "StatedStanding"
        assert way == expected


def test_a_checkpoint_python_made_is_assessed_in_full() -> None:
    rng = random.Random(7)
    events = _workload(40, rng)
    with python_core():
        for user_events in events.values():
            checkpoint = in_batches(user_events, rng, AT, PolicyTimeline(POLICY))
            assert checkpoint.values is None
            stated = announced_standing(checkpoint, PolicyTimeline(POLICY))
            assert stated is None or isinstance(stated, Assessment)


@pytest.mark.slow
def test_a_thousand_users_get_the_assessed_events() -> None:
    rng = random.Random(20261203)
    timeline = PolicyTimeline.of(
        POLICY,
        [(AT - timedelta(days=200), POLICY.model_copy(update={"version": "later"}))],
        ScorecardTimeline.of(CARDS[0], [(AT - timedelta(days=400), CARDS[1])]),
    )
    ways: dict[str | None, int] = {}
    for events in _workload(1000, rng).values():
        checkpoint = in_batches(events, rng, AT, timeline, stored_ledger=compiled.active())
        way = assert_same_event(checkpoint, timeline)
        ways[way] = ways.get(way, 0) + 1
    # Both ways are taken, often: the comparison is not vacuous.
    assert ways.get("StatedStanding", 0) > 300 and ways.get("Assessment", 0) > 50


def test_a_status_change_event_says_which_scorecard_scored() -> None:
    card = CARDS[1]
    stated = StatedStanding(
        user_id="u1",
        at=AT,
        line=LineStatus(EffectiveStatus.CLOSED, AT),
        score=512,
        points={},
        segment="standard",
        exception=None,
        policy_version=POLICY.version,
        card=card,
    )
    event = LineStatusChanged.model_validate_json(
        status_change_event(PREVIOUS, stated, POLICY, "en", restated=True)
    )
    assert event.scorecard_version == card.version
    assert event.credit_limit == NO_LIMIT
    assert event.previous_status is EffectiveStatus.OPEN
    assert [r.code for r in event.reasons][:2] == ["LATE_EVENT_RESTATED", "SCORE_BELOW_THRESHOLD"]


@pytest.mark.parametrize("score", [349, 951])
def test_a_score_off_the_scale_is_refused_not_announced(score: int) -> None:
    stated = StatedStanding(
        user_id="u1",
        at=AT,
        line=LineStatus(EffectiveStatus.CLOSED, AT),
        score=score,
        points={},
        segment="standard",
        exception=None,
        policy_version=POLICY.version,
        card=CARDS[1],
    )
    with pytest.raises(ValueError, match=str(score)):
        status_change_event(None, stated, POLICY, "en", restated=False)


def test_each_reason_is_written_as_the_model_writes_it_and_made_once() -> None:
    made = reason(ReasonCode.SCORE_QUALIFIES, "zh")
    assert reason_json(made) == made.model_dump_json().encode()
    assert reason_json(made) is reason_json(made)
    # Another object with equal content is written alike, never mistaken for the first.
    other = made.model_copy(update={"text": "other"})
    assert reason_json(other) == other.model_dump_json().encode() != reason_json(made)
