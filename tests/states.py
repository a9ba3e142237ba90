"""Comparing folded states: exact, except decayed counters (floating point)."""

from __future__ import annotations

import math
from dataclasses import fields

from streams.core.state import UserState

DECAYED = ("on_time", "late", "missed")


def assert_same_state(a: UserState, b: UserState) -> None:
    """Equal exactly, except decayed counters (floating point) within 1e-9 relative."""
    for f in fields(UserState):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if f.name in DECAYED:
            assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12), f.name
        else:
            assert left == right, f.name


def assert_states_equal(actual: dict[str, UserState], expected: dict[str, UserState]) -> None:
    """The same users with the same states."""
    assert sorted(actual) == sorted(expected)
    for user, state in expected.items():
        assert_same_state(actual[user], state)
