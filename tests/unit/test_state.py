"""The fold: order independence, deduplication, decay by event time, snapshots."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import InputEvent
from streams.core.codec import decode_state, encode_state
from streams.core.state import (
    MONTHS_KEPT,
    REPAYMENT_HALF_LIFE,
    UserState,
    apply_event,
    decay_factor,
    fold_events,
    reference_fold,
)
from tests.builders import asset, repayment, spending, ts
from tests.properties import examples
from tests.states import assert_same_state


def test_decay_halves_after_one_half_life() -> None:
    assert decay_factor(REPAYMENT_HALF_LIFE) == pytest.approx(0.5)
    assert decay_factor(timedelta(0)) == 1.0
    assert decay_factor(-REPAYMENT_HALF_LIFE) == 1.0


def test_repayments_are_classified_on_time_late_and_missed() -> None:
    events = [
        repayment(event_id="a", occurred_at=ts(10)),
        repayment(event_id="b", occurred_at=ts(10), days_past_due=5),
        repayment(event_id="c", occurred_at=ts(10), amount_paid="50.00", days_past_due=40),
        repayment(event_id="d", occurred_at=ts(10), amount_due=0, amount_paid=0),
    ]
    state = fold_events(None, events)
    assert state is not None
    assert (state.on_time, state.late, state.missed) == (1.0, 1.0, 1.0)
    assert state.repayments == 4
    assert state.last_delinquency_at == {1: events[1].occurred_at, 30: events[2].occurred_at}
    assert max(state.delinquency_by_month.values()) == 40


def test_older_event_is_added_already_decayed() -> None:
    newer = repayment(event_id="n", occurred_at=ts(0))
    older = repayment(event_id="o", occurred_at=ts(180))
    state = fold_events(None, [newer, older])
    assert state is not None
    assert state.on_time == pytest.approx(1.0 + 0.5, rel=1e-3)
    assert state.as_of == newer.occurred_at


def test_loan_balance_and_assets_are_last_writer_wins_by_event_time() -> None:
    late_balance = repayment(event_id="x2", occurred_at=ts(1), outstanding_balance="100.00")
    early_balance = repayment(event_id="x1", occurred_at=ts(30), outstanding_balance="900.00")
    old_proof = asset(event_id="p1", occurred_at=ts(2), value="1.00", verified=False)
    new_proof = asset(event_id="p2", occurred_at=ts(1), value="20000.00", verified=True)
    orders: list[list[InputEvent]] = [
        [late_balance, early_balance, new_proof, old_proof],
        [early_balance, late_balance, old_proof, new_proof],
    ]
    for order in orders:
        state = fold_events(None, order)
        assert state is not None
        assert state.loans["loan-1"].balance == Decimal("100.00")
        assert state.assets["deposit"].value == Decimal("20000.00")
        assert state.assets["deposit"].verified


def test_buckets_older_than_the_kept_months_are_dropped_in_any_order() -> None:
    old = spending(event_id="old", occurred_at=ts(31 * (MONTHS_KEPT + 2)))
    new = spending(event_id="new", occurred_at=ts(0))
    a = fold_events(None, [old, new])
    b = fold_events(None, [new, old])
    assert a is not None and b is not None
    assert_same_state(a, b)
    assert len(a.spend_by_month) == 1
    assert a.spendings == 2


def test_reference_fold_counts_a_redelivered_event_once() -> None:
    event = spending(event_id="s")
    states = reference_fold([event, event, event])
    assert states["u-1"].spendings == 1


def test_events_of_another_user_are_refused() -> None:
    state = apply_event(None, spending(user_id="u-1"))
    with pytest.raises(ValueError, match="another user"):
        apply_event(state, spending(user_id="u-2", event_id="s-2"))


# ---- property: any order gives the same state --------------------------------------------
def _event(kind: int, i: int, days: float, amount: int, dpd: int, flag: bool) -> InputEvent:
    if kind == 0:
        return repayment(
            event_id=f"r{i}",
            occurred_at=ts(days),
            amount_due=amount,
            amount_paid=amount if flag else 0,
            days_past_due=dpd,
            outstanding_balance=amount * 3,
            loan_id=f"loan-{i % 3}",
        )
    if kind == 1:
        return spending(event_id=f"s{i}", occurred_at=ts(days), amount=amount + 1)
    return asset(
        event_id=f"a{i}",
        occurred_at=ts(days),
        value=amount,
        asset_type=["deposit", "income", "property"][i % 3],
        verified=flag,
    )


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.floats(0, 1500, allow_nan=False),
        st.integers(1, 50_000),
        st.integers(0, 120),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
).map(lambda rows: [_event(k, i, d, a, p, f) for i, (k, d, a, p, f) in enumerate(rows)])


@settings(max_examples=examples(150), deadline=None)
@given(events=events_strategy, seed=st.integers(0, 2**32 - 1))
def test_any_order_folds_to_the_same_state(events: list[InputEvent], seed: int) -> None:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    a = fold_events(None, events)
    b = fold_events(None, shuffled)
    assert a is not None and b is not None
    assert_same_state(a, b)


@settings(max_examples=examples(100), deadline=None)
@given(events=events_strategy, seed=st.integers(0, 2**32 - 1))
def test_duplicates_in_any_order_do_not_change_the_reference(
    events: list[InputEvent], seed: int
) -> None:
    rng = random.Random(seed)
    redelivered = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(redelivered)
    assert_same_state(reference_fold(events)["u-1"], reference_fold(redelivered)["u-1"])


@settings(max_examples=examples(100), deadline=None)
@given(events=events_strategy)
def test_codec_round_trips_exactly(events: list[InputEvent]) -> None:
    state = fold_events(None, events)
    assert state is not None
    raw = encode_state(state)
    decoded = decode_state(raw, state.user_id)
    assert decoded == state
    assert encode_state(decoded) == raw
    # Maps come back in key order, as stored.
    assert list(decoded.spend_by_month) == sorted(state.spend_by_month)


def test_codec_refuses_unknown_formats_and_damaged_bytes() -> None:
    raw = encode_state(apply_event(None, spending()))
    with pytest.raises(ValueError, match="format"):
        decode_state(b'{"fmt": 1}', "u-1")  # format 1 (JSON): rebuilt by replay --rebuild
    with pytest.raises(ValueError, match="format"):
        decode_state(b"", "u-1")
    with pytest.raises(ValueError, match="trailing"):
        decode_state(raw + b"\x00", "u-1")
    with pytest.raises((ValueError, IndexError, struct.error)):
        decode_state(raw[:-3], "u-1")


# ---- the one-pass fold equals apply_event event by event ----------------------------------
def _one_by_one(state: UserState | None, events: list[InputEvent]) -> UserState | None:
    for event in events:
        state = apply_event(state, event)
    return state


@settings(max_examples=examples(200), deadline=None)
@given(events=events_strategy, split=st.integers(0, 40))
def test_one_pass_fold_equals_applying_event_by_event(events: list[InputEvent], split: int) -> None:
    # Exactly equal (floats too): the same operations in the same order.
    start = _one_by_one(None, events[:split])
    expected = _one_by_one(start, events[split:])
    actual = fold_events(start, events[split:])
    assert actual == expected
    if expected is not None and actual is not None:
        assert encode_state(actual) == encode_state(expected)
        assert list(actual.spend_by_month) == list(expected.spend_by_month)
        assert list(actual.delinquency_by_month) == list(expected.delinquency_by_month)


def test_one_pass_fold_of_nothing_returns_the_state_itself() -> None:
    state = apply_event(None, spending())
    assert fold_events(state, []) is state
    assert fold_events(None, []) is None


def test_one_pass_fold_refuses_events_of_another_user() -> None:
    with pytest.raises(ValueError, match="another user"):
        fold_events(None, [spending(user_id="u-1"), spending(user_id="u-2", event_id="s-2")])


@pytest.mark.parametrize(
    "counters",
    [(1e-05, 1e16, 0.1), (5e-324, 1.2345678901234568e17, 0.0), (1.23e-8, 2.5, 3.0)],
)
def test_codec_keeps_counters_bit_for_bit(counters: tuple[float, float, float]) -> None:
    state = replace(
        apply_event(None, spending()), on_time=counters[0], late=counters[1], missed=counters[2]
    )
    assert decode_state(encode_state(state), state.user_id) == state


def test_a_stored_state_is_a_fraction_of_its_json() -> None:
    events = [
        repayment(event_id=f"r-{i}", occurred_at=ts(300 - 30 * i), days_past_due=i % 3 * 20)
        for i in range(6)
    ] + [spending(event_id=f"s-{i}", occurred_at=ts(290 - 30 * i)) for i in range(6)]
    state = fold_events(None, events)
    assert state is not None
    as_json = json.dumps(
        {
            "a": state.as_of.timestamp(),
            "d": [state.on_time, state.late, state.missed],
            "sm": {str(m): str(v) for m, v in state.spend_by_month.items()},
            "dm": {str(m): d for m, d in state.delinquency_by_month.items()},
            "s": {str(k): v.timestamp() for k, v in state.last_delinquency_at.items()},
            "l": {k: [v.event_id, str(v.balance)] for k, v in state.loans.items()},
        },
        separators=(",", ":"),
    )
    assert len(encode_state(state)) < 0.7 * len(as_json)
