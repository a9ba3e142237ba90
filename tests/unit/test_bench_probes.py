"""When the benchmark looks for its freshness probes (pure scheduling)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.probes import POLL_SECONDS, RELATIVE_RESOLUTION, ProbeSchedule


def test_a_probe_is_looked_for_at_once_and_done_when_found() -> None:
    schedule = ProbeSchedule()
    schedule.sent("p1", now=10.0)
    assert schedule.due(10.0) == ["p1"]
    ((sent, delay),) = schedule.looked({"p1": True}, now=10.03)
    assert sent == 10.0
    assert delay == pytest.approx(0.03)
    assert len(schedule) == 0
    assert schedule.due(99.0) == []


def test_a_young_probe_is_looked_for_every_poll() -> None:
    schedule = ProbeSchedule()
    schedule.sent("p1", now=0.0)
    assert schedule.looked({"p1": False}, now=0.1) == []
    assert schedule.due(0.1 + POLL_SECONDS / 2) == []
    assert schedule.due(0.1 + POLL_SECONDS) == ["p1"]


def test_an_old_probe_is_looked_for_in_proportion_to_its_age() -> None:
    schedule = ProbeSchedule()
    schedule.sent("old", now=0.0)
    schedule.sent("young", now=19.9)
    found = {probe: False for probe in schedule.due(20.0)}
    assert set(found) == {"old", "young"}
    schedule.looked(found, now=20.0)
    wait = 20.0 * RELATIVE_RESOLUTION  # 0.4 s
    assert schedule.due(20.0 + POLL_SECONDS) == ["young"]
    assert schedule.due(20.0 + wait) == ["old", "young"]


@given(
    st.floats(min_value=0.0, max_value=120.0),
    st.lists(st.floats(min_value=0.0, max_value=0.01), min_size=1, max_size=50),
)
def test_a_delay_is_measured_within_the_resolution_and_in_few_looks(
    found_after: float, poll_gaps: list[float]
) -> None:
    # Polls come every POLL_SECONDS plus a jitter; the state appears after ``found_after``.
    schedule = ProbeSchedule()
    schedule.sent("p", now=0.0)
    now, looks, gaps = 0.0, 0, iter(poll_gaps * 100_000)
    while True:
        if schedule.due(now):
            looks += 1
            done = schedule.looked({"p": now >= found_after}, now)
            if done:
                ((_, delay),) = done
                break
        now += POLL_SECONDS + next(gaps)
    slack = max(POLL_SECONDS, found_after * RELATIVE_RESOLUTION) + 2 * (POLL_SECONDS + 0.01)
    assert found_after <= delay <= found_after * (1 + RELATIVE_RESOLUTION) + slack
    # Every poll while young (age × resolution under one poll), then geometrically fewer.
    young = POLL_SECONDS / RELATIVE_RESOLUTION
    assert looks <= young / POLL_SECONDS + 2 + math.log(max(found_after, young) / young) / math.log(
        1 + RELATIVE_RESOLUTION
    )
