"""The path back: every path reaches its target, its actions and months do what it says,
and it is honest about time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import AssetEvent, AssetType, InputEvent
from streams.core.features import derive_features
from streams.core.good_behaviour import good_behaviour_events
from streams.core.labels import add_months
from streams.core.path_back import path_back, time_alone
from streams.core.policy import load_default_policy
from streams.core.scorecard import load_default_scorecard, load_expert_scorecard
from streams.core.state import UserState, fold_events
from streams.core.timeline import advance, canonical, constant, standing
from streams.devtools.docs import worked_example_events
from tests.properties import examples
from tests.scorecard_histories import AT, histories

FITTED = load_default_scorecard()


def worked_example() -> tuple[UserState, list[InputEvent]]:
    now, before, _ = worked_example_events()
    assert now == AT
    state = fold_events(None, before)
    assert state is not None
    return state, before


def score_of(events: list[InputEvent], months: int = 0) -> int:
    state = fold_events(None, events)
    assert state is not None
    return FITTED.evaluate(derive_features(state, add_months(AT, months))).score


def test_the_worked_example_has_paths_that_reach_the_target() -> None:
    state, _ = worked_example()
    result = path_back(FITTED, state, AT, 620)
    assert not result.reached
    assert result.score < 620
    assert 1 <= len(result.paths) <= 3
    for path in result.paths:
        assert path.score >= 620
        assert 1 <= len([m for m in path.moves if m.kind == "action"]) + (path.months > 0) <= 2
        assert path.text.en and path.text.zh
        assert all(m.points > 0 for m in path.moves)


def test_a_verified_asset_path_does_what_it_says() -> None:
    """Verifying the deposit the path names, for real, reaches at least the path's score."""
    state, before = worked_example()
    result = path_back(FITTED, state, AT, 560, limit=10)
    asset_paths = [
        p for p in result.paths if [m.characteristic for m in p.moves] == ["verified_assets"]
    ]
    assert asset_paths, [p.text.en for p in result.paths]
    move = asset_paths[0].moves[0]
    edge = FITTED.characteristics["verified_assets"].bins[move.to_bin - 1].below
    assert edge is not None and f"{int(edge):,}" in move.text.en
    deposit = AssetEvent(
        event_id="a-proof",
        user_id=state.user_id,
        occurred_at=AT - timedelta(hours=1),
        asset_type=AssetType.DEPOSIT,
        value=Decimal(int(edge)),
        verified=True,
    )
    assert score_of([*before, deposit]) >= asset_paths[0].score >= 560


def test_the_good_behaviour_path_is_exactly_the_score_after_those_months() -> None:
    state, before = worked_example()
    result = path_back(FITTED, state, AT, 560, limit=10)
    assert result.good_behaviour_months is not None
    k = result.good_behaviour_months
    timed = [p for p in result.paths if all(m.kind == "time" for m in p.moves)]
    assert timed and timed[0].months == k
    after = [*before, *good_behaviour_events(state, AT, k)]
    assert score_of(after, k) == timed[0].score >= 560
    assert score_of([*before, *good_behaviour_events(state, AT, k - 1)], k - 1) < 560
    assert "months" in timed[0].text.en or "month" in timed[0].text.en


def test_time_alone_is_the_score_with_no_event() -> None:
    state, before = worked_example()
    assert time_alone(FITTED, state, AT) == [(k, score_of(before, k)) for k in (3, 6, 12)]


def test_a_user_above_the_target_needs_no_path() -> None:
    state, _ = worked_example()
    result = path_back(FITTED, state, AT, 400)
    assert result.reached and result.paths == []


@settings(max_examples=examples(40))
@given(histories(), st.integers(450, 750))
def test_every_path_reaches_its_target_under_any_card(
    events: list[InputEvent], target: int
) -> None:
    state = fold_events(None, events)
    assert state is not None
    for card in (FITTED, load_expert_scorecard()):
        result = path_back(card, state, AT, target, max_months=6)
        current = card.evaluate(derive_features(state, AT)).score
        assert result.score == current
        for path in result.paths:
            assert path.score >= target
            assert len({m.characteristic for m in path.moves}) == len(path.moves)


@settings(max_examples=examples(40))
@given(histories(), st.integers(450, 750))
def test_a_decisions_assessment_gives_the_path_back_derived_afresh(
    events: list[InputEvent], target: int
) -> None:
    """A decision hands its assessment's features and score to the path back (not derived
    twice): the paths are the ones derived afresh from the checkpoint."""
    timelines = constant(load_default_policy())
    checkpoint = advance(canonical(events), timelines, AT, timedelta(days=1826))
    assessment = standing(checkpoint, timelines)
    assert assessment is not None and checkpoint.state is not None and checkpoint.at
    card, state, at = assessment.card, checkpoint.state, checkpoint.at
    afresh = path_back(card, state, at, target)
    assert path_back(card, state, at, target, now=(assessment.features, assessment.scored)) == (
        afresh
    )


@settings(max_examples=examples(40))
@given(histories(), st.integers(1, 24))
def test_good_behaviour_events_are_what_validation_gives(
    events: list[InputEvent], months: int
) -> None:
    """They are built without validation: each equals, field by field and in its exact
    decimal form, the event validated from its own fields."""
    state = fold_events(None, events)
    assert state is not None
    built = good_behaviour_events(state, AT, months)
    assert len(built) >= months
    for event in built:
        validated = type(event).model_validate(dict(event))
        assert event == validated
        assert repr(dict(event)) == repr(dict(validated))
        assert event.model_dump_json() == validated.model_dump_json()
