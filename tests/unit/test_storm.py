"""The dead-letter storm guard: fires once when most records are rejected, ends with hysteresis."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streams.core.storm import DeadLetterStormGuard


def feed(guard: DeadLetterStormGuard, codes: list[str | None]) -> list[bool]:
    changes = []
    for code in codes:
        guard.observe(code)
        change = guard.update()
        if change is not None:
            changes.append(change)
    return changes


def test_a_storm_starts_once_and_ends_once() -> None:
    guard = DeadLetterStormGuard(window=100, min_records=50, ratio=0.5)
    assert feed(guard, [None] * 60) == []
    assert feed(guard, ["NOT_JSON"] * 80) == [True]
    assert guard.in_storm
    assert guard.top_codes() == [("NOT_JSON", 80)]
    assert feed(guard, [None] * 100) == [False]
    assert not guard.in_storm


def test_needs_enough_records_before_firing() -> None:
    guard = DeadLetterStormGuard(window=100, min_records=50, ratio=0.5)
    assert feed(guard, ["NOT_JSON"] * 49) == []
    assert feed(guard, ["NOT_JSON"]) == [True]


def test_occasional_bad_records_are_not_a_storm() -> None:
    guard = DeadLetterStormGuard(window=1000, min_records=100, ratio=0.5)
    assert feed(guard, (["KEY_MISMATCH"] + [None] * 9) * 300) == []


@given(st.lists(st.sampled_from([None, "NOT_JSON", "EMPTY_KEY"]), max_size=500))
def test_changes_alternate_and_share_stays_in_bounds(codes: list[str | None]) -> None:
    guard = DeadLetterStormGuard(window=50, min_records=10, ratio=0.5)
    changes = feed(guard, codes)
    assert all(a != b for a, b in itertools.pairwise(changes))
    assert not changes or changes[0] is True
    assert 0.0 <= guard.rejected_share <= 1.0
