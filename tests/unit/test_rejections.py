"""Rejections logged as rate-limited summaries: the first at once, then one line per interval."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from streams.core.rejections import RejectionSummary, summary_line


def test_the_line_names_codes_and_counts_only() -> None:
    counts = Counter({"NOT_JSON": 1200, "KEY_MISMATCH": 34})
    assert summary_line(counts, 10.2) == (
        "dead-lettered 1,234 records in the last 10 s: NOT_JSON 1,200, KEY_MISMATCH 34"
    )
    assert summary_line(Counter({"EMPTY_KEY": 1}), 0.0) == "dead-lettered 1 record: EMPTY_KEY 1"


def test_a_burst_is_one_line_at_once_and_one_summary_later() -> None:
    summary = RejectionSummary(interval=10)
    lines = [summary.add("NOT_JSON", 100.0)]
    for i in range(1, 20_000):
        lines.append(summary.add("NOT_JSON" if i % 10 else "KEY_MISMATCH", 100.0 + i * 0.0003))
    assert [x for x in lines if x] == ["dead-lettered 1 record: NOT_JSON 1"]
    assert summary.due(105.0) is None  # not yet: the last line is 5 s old
    assert summary.due(110.0) == (
        "dead-lettered 19,999 records in the last 10 s: NOT_JSON 18,000, KEY_MISMATCH 1,999"
    )
    assert summary.due(200.0) is None  # nothing counted since


def test_a_lone_rejection_after_a_quiet_spell_is_reported_at_once() -> None:
    summary = RejectionSummary(interval=10)
    assert summary.add("NOT_JSON", 0.0)
    assert summary.add("NOT_JSON", 3.0) is None
    assert summary.due(10.0) == "dead-lettered 1 record in the last 7 s: NOT_JSON 1"
    assert summary.add("EMPTY_KEY", 500.0) == "dead-lettered 1 record: EMPTY_KEY 1"


@given(st.lists(st.tuples(st.sampled_from(["NOT_JSON", "EMPTY_KEY"]), st.floats(0, 5))))
def test_every_rejection_is_counted_once_and_lines_are_an_interval_apart(
    steps: list[tuple[str, float]],
) -> None:
    summary = RejectionSummary(interval=10)
    now, reported, times = 0.0, 0, []
    for code, pause in steps:
        now += pause
        for line in (summary.add(code, now), summary.due(now)):
            if line:
                times.append(now)
                reported += int(line.split()[1].replace(",", ""))
    if last := summary.due(now + 11):  # an interval later (10 would be exposed to rounding)
        reported += int(last.split()[1].replace(",", ""))
    assert reported == len(steps)
    assert all(b - a >= 10 for a, b in itertools.pairwise(times))
