"""The status machine's fast path equals the full assessment it stands for (hypothesis).

``review_step`` (what every review instant runs), ``feature_values`` and
``ScorecardDocument.score_of`` skip work the machine does not need; these properties hold
them to ``assess``, ``derive_features(...).values()`` and ``evaluate`` bit for bit.
"""

from __future__ import annotations

import math
import random
from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from schemas.models import EffectiveStatus, InputEvent, RepaymentEvent
from streams.core import features as features_module
from streams.core.features import Features, derive_features, feature_values
from streams.core.policy import Policy, Thresholds, load_default_policy
from streams.core.scorecard import (
    ScorecardDocument,
    load_default_scorecard,
    load_expert_scorecard,
)
from streams.core.scoring import LineStatus, assess, review_step
from streams.core.state import UserState, fold_events
from tests.scorecard_histories import AT, histories, income_event

POLICY = load_default_policy()
CARDS = (load_default_scorecard(), load_expert_scorecard())
#: The numeric features: every field of Features but the instant and the delinquency maps.
NUMERIC = [
    f.name
    for f in fields(Features)
    if f.name not in ("at", "days_since_delinquency", "last_delinquency_at")
]
#: Instants after a history's last event: within its month, months later, past the horizon.
later = st.floats(min_value=0, max_value=900).map(lambda days: AT + timedelta(days=days))


def folded(events: list[InputEvent]) -> UserState:
    state = fold_events(None, sorted(events, key=lambda e: (e.occurred_at, e.event_id)))
    assert state is not None
    return state


def same(a: object, b: object) -> bool:
    """Equal, NaN included, and of the same type (a float is not an equal int)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@given(histories(), later)
def test_feature_values_are_the_features_values(events: list[InputEvent], at: datetime) -> None:
    state = folded(events)
    fast = feature_values(state, at)
    full = derive_features(state, at).values()
    assert list(fast) == list(full)
    assert all(same(fast[name], full[name]) for name in full), (fast, full)


@given(
    st.lists(
        st.tuples(histories(), st.lists(later, min_size=1, max_size=3)), min_size=2, max_size=5
    ),
    st.randoms(),
)
def test_the_features_cache_never_mixes_states_or_months(
    cases: list[tuple[list[InputEvent], list[datetime]]], rng: random.Random
) -> None:
    """States and instants interleaved (the cache keeps the last state's parts for one
    month) give what each gives computed alone."""
    states = [(folded(events), instants) for events, instants in cases]
    pairs = [(state, at) for state, instants in states for at in instants]
    expected = []
    for state, at in pairs:
        features_module._Last.entry = None
        expected.append(derive_features(state, at))
    order = list(range(len(pairs))) * 2
    rng.shuffle(order)
    for i in order:
        state, at = pairs[i]
        assert derive_features(state, at) == expected[i]
        assert feature_values(state, at) == expected[i].values()


values = st.dictionaries(
    st.sampled_from(NUMERIC),
    st.none() | st.floats(allow_infinity=True, allow_nan=True) | st.integers(0, 3).map(float),
)


def test_values_name_every_numeric_feature_in_field_order() -> None:
    state = folded([income_event(Decimal(5000), True, 10)])
    assert list(derive_features(state, AT).values()) == NUMERIC


@given(values, st.sampled_from(CARDS))
def test_score_of_is_the_evaluated_score(
    feature_map: dict[str, float | None], card: ScorecardDocument
) -> None:
    assert card.score_of(feature_map) == card.evaluate(feature_map).score


previous_lines = st.none() | st.builds(
    LineStatus,
    st.sampled_from(list(EffectiveStatus)),
    st.floats(min_value=0, max_value=400).map(lambda days: AT - timedelta(days=days)),
    st.booleans(),
)


thresholds = st.tuples(st.integers(350, 950), st.integers(350, 950)).map(
    lambda pair: Thresholds(close_below=min(pair), reopen_at=max(pair))
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """The shipped policy with thresholds drawn anew for the status, every segment and
    every exception: which of them applies must show in the status."""
    status = POLICY.status.model_copy(update={"thresholds": draw(thresholds)})
    segments = [s.model_copy(update={"thresholds": draw(thresholds)}) for s in POLICY.segments]
    exceptions = [e.model_copy(update={"thresholds": draw(thresholds)}) for e in POLICY.exceptions]
    return POLICY.model_copy(
        update={"status": status, "segments": segments, "exceptions": exceptions}
    )


@given(histories(), later, previous_lines, st.sampled_from(CARDS), policies())
def test_a_review_step_is_the_assessments_status_score_and_segment(
    events: list[InputEvent],
    at: datetime,
    previous: LineStatus | None,
    card: ScorecardDocument,
    policy: Policy,
) -> None:
    state = folded(events)
    step = review_step(state, at, policy, previous, card)
    full = assess(state, at, policy, previous, with_promotions=False, card=card)
    assert (step.line, step.score, step.segment) == (full.line, full.score, full.segment)


@given(histories())
def test_successive_states_sharing_loans_or_assets_get_their_own_features(
    events: list[InputEvent],
) -> None:
    """A fold keeps the loans and assets mappings no event changed (the holdings cache is
    keyed by them): each successive state's features equal those derived with cold caches."""
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    states: list[UserState] = []
    state: UserState | None = None
    for event in ordered:
        following = fold_events(state, [event])
        assert following is not None
        if state is not None and not isinstance(event, RepaymentEvent):
            assert following.loans is state.loans  # copied on change only
        state = following
        states.append(state)
    at = ordered[-1].occurred_at + timedelta(days=1)
    expected = []
    for each in states:
        features_module._Last.entry = None
        features_module._LastHoldings.entry = None
        expected.append(feature_values(each, at))
    for each, values in zip(states, expected, strict=True):
        assert feature_values(each, at) == values
