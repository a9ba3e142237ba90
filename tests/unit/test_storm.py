"""The dead-letter storm guard: fires once when most records are rejected, ends with hysteresis,
and ends by time on a quiet topic."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streams.core.storm import DeadLetterStormGuard


def feed(guard: DeadLetterStormGuard, codes: list[str | None], now: float = 0.0) -> list[bool]:
    changes = []
    for code in codes:
        guard.observe(code)
        change = guard.update(now)
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


def test_a_storm_ends_on_a_quiet_topic_once_its_records_are_old() -> None:
    guard = DeadLetterStormGuard(window=1000, min_records=100, ratio=0.5, window_seconds=60)
    for _ in range(150):
        guard.observe("NOT_JSON")
    assert guard.update(now=1000.0) is True  # a batch: stamped at 1000
    assert guard.update(now=1059.9) is None  # no record since: still a storm
    assert guard.records == 150
    assert guard.update(now=1060.0) is False  # 60 s old: gone
    assert guard.records == 0
    assert guard.rejected_share == 0.0
    assert guard.update(now=5000.0) is None


def test_outcomes_age_by_the_update_that_followed_them() -> None:
    guard = DeadLetterStormGuard(window=1000, min_records=10, ratio=0.5, window_seconds=10)
    feed(guard, ["NOT_JSON"] * 20, now=0.0)
    feed(guard, [None] * 10, now=5.0)
    assert guard.in_storm and guard.records == 30
    guard.update(now=10.0)  # the 20 rejections expire, the 10 good records remain
    assert guard.records == 10
    assert not guard.in_storm
    assert guard.top_codes() == []


def test_time_does_not_start_a_storm_below_the_minimum() -> None:
    # 1 rejection a second, nothing else: never 100 within 60 s, so no storm.
    guard = DeadLetterStormGuard(window=1000, min_records=100, ratio=0.5, window_seconds=60)
    changes = []
    for second in range(600):
        guard.observe("NOT_JSON")
        if (change := guard.update(float(second))) is not None:
            changes.append(change)
    assert changes == []
    assert guard.records == 60


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from([None, "NOT_JSON", "EMPTY_KEY"]), max_size=40),
            st.floats(0, 30),
        ),
        max_size=40,
    )
)
def test_changes_alternate_and_the_window_stays_consistent(
    batches: list[tuple[list[str | None], float]],
) -> None:
    guard = DeadLetterStormGuard(window=50, min_records=10, ratio=0.5, window_seconds=20)
    changes = []
    now = 0.0
    for codes, pause in batches:
        for code in codes:
            guard.observe(code)
        now += pause
        if (change := guard.update(now)) is not None:
            changes.append(change)
        assert guard.records <= guard.window
        assert guard.records == sum(s.count for s in guard._stamps) + guard._unstamped
        assert sum(n for _, n in guard.top_codes(10)) <= guard.records
    assert all(a != b for a, b in itertools.pairwise(changes))
    assert not changes or changes[0] is True
    assert 0.0 <= guard.rejected_share <= 1.0
    guard.update(now + 21)
    assert guard.records == 0
    assert not guard.in_storm
