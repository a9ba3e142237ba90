"""The dead-letter header layout: the worker's headers cannot be forged by a producer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import dead_letter
from streams.core.dead_letters import (
    Layout,
    dead_letter_headers,
    parse_headers,
    parse_since,
    read_ranges,
)
from streams.ports import InboundRecord

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FORGED = [
    (dead_letter.HEADER_ERROR_CODE, b"NOT_JSON"),
    (dead_letter.HEADER_SOURCE_TOPIC, b"credit.policy"),
    (dead_letter.HEADER_SOURCE_PARTITION, b"0"),
    ("traceparent", b"00-abc-01"),
]


def record(headers: list[tuple[str, bytes]]) -> InboundRecord:
    return InboundRecord("credit.spending", 3, 41, b"u-1", b"{}", headers=headers)


def test_forged_headers_are_carried_under_a_prefix_and_ours_are_read() -> None:
    headers = dead_letter_headers(record(FORGED), "MISSING_FIELD", "amount is missing", AT)
    names = [name for name, _ in headers]
    assert names[:6] == list(dead_letter.DEAD_LETTER_HEADERS)
    assert names[6:] == [f"original.{name}" for name, _ in FORGED]
    assert names.count(dead_letter.HEADER_ERROR_CODE) == 1  # even first-match readers are right
    parsed = parse_headers(headers)
    assert parsed.layout is Layout.PREFIXED
    assert parsed.ours[dead_letter.HEADER_ERROR_CODE] == "MISSING_FIELD"
    assert parsed.ours[dead_letter.HEADER_SOURCE_TOPIC] == "credit.spending"
    assert parsed.ours[dead_letter.HEADER_SOURCE_PARTITION] == "3"
    assert parsed.ours[dead_letter.HEADER_SOURCE_OFFSET] == "41"
    assert parsed.ours[dead_letter.HEADER_REJECTED_AT] == AT.isoformat()
    assert list(parsed.theirs) == FORGED  # exactly the producer's, for a re-drive


def test_a_producer_header_that_already_has_the_prefix_round_trips() -> None:
    theirs = [("original.error.code", b"X"), ("original.", b""), ("", b"empty name")]
    parsed = parse_headers(dead_letter_headers(record(theirs), "NOT_JSON", "m", AT))
    assert parsed.layout is Layout.PREFIXED
    assert parsed.ours[dead_letter.HEADER_ERROR_CODE] == "NOT_JSON"
    assert list(parsed.theirs) == theirs


def legacy(theirs: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """What workers before the prefixed layout wrote: the producer's headers, then ours."""
    return [
        *theirs,
        (dead_letter.HEADER_ERROR_CODE, b"MISSING_FIELD"),
        (dead_letter.HEADER_ERROR_MESSAGE, b"amount is missing"),
        (dead_letter.HEADER_SOURCE_TOPIC, b"credit.spending"),
        (dead_letter.HEADER_SOURCE_PARTITION, b"3"),
        (dead_letter.HEADER_SOURCE_OFFSET, b"41"),
        (dead_letter.HEADER_REJECTED_AT, AT.isoformat().encode()),
    ]


def test_legacy_letters_are_read_from_their_last_six_headers() -> None:
    forged_block = [(name, b"forged") for name in dead_letter.DEAD_LETTER_HEADERS]
    for theirs in (FORGED, forged_block, [*forged_block, ("original.x", b"y")]):
        parsed = parse_headers(legacy(theirs))
        assert parsed.layout is Layout.LEGACY
        assert parsed.ours[dead_letter.HEADER_ERROR_CODE] == "MISSING_FIELD"
        assert parsed.ours[dead_letter.HEADER_SOURCE_TOPIC] == "credit.spending"
        assert list(parsed.theirs) == theirs


def test_headers_no_worker_wrote_are_trusted_for_nothing() -> None:
    for headers in (
        [],
        FORGED,
        [(name, b"x") for name in reversed(dead_letter.DEAD_LETTER_HEADERS)],
        [*((n, b"x") for n in dead_letter.DEAD_LETTER_HEADERS), ("unprefixed", b"y")],
    ):
        parsed = parse_headers(headers)
        assert parsed.layout is Layout.UNKNOWN
        assert parsed.ours == {}
        assert parsed.theirs == ()


header_lists = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from([*dead_letter.DEAD_LETTER_HEADERS, "original.", "original.error.code"]),
            st.text(max_size=20),
        ),
        st.binary(max_size=8),
    ),
    max_size=12,
)


@given(header_lists, st.sampled_from(["NOT_JSON", "KEY_MISMATCH"]))
def test_whatever_the_producer_sends_the_worker_s_headers_win(
    theirs: list[tuple[str, bytes]], code: str
) -> None:
    headers = dead_letter_headers(record(theirs), code, "message", AT)
    parsed = parse_headers(headers)
    assert parsed.ours[dead_letter.HEADER_ERROR_CODE] == code
    assert parsed.ours[dead_letter.HEADER_SOURCE_TOPIC] == "credit.spending"
    assert list(parsed.theirs) == theirs
    # The same producer headers on a legacy letter: still the worker's values.
    parsed = parse_headers(legacy(theirs))
    assert parsed.ours[dead_letter.HEADER_SOURCE_TOPIC] == "credit.spending"
    assert list(parsed.theirs) == theirs


def test_since_takes_durations_and_rfc3339_times() -> None:
    assert parse_since("90s", AT) == AT - timedelta(seconds=90)
    assert parse_since("30m", AT) == AT - timedelta(minutes=30)
    assert parse_since(" 2h ", AT) == AT - timedelta(hours=2)
    assert parse_since("7d", AT) == AT - timedelta(days=7)
    assert parse_since("1w", AT) == AT - timedelta(days=7)
    assert parse_since("2026-11-30T08:00:00Z", AT) == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert parse_since("2026-11-30T16:00:00+08:00", AT) == datetime(2026, 11, 30, 8, tzinfo=UTC)
    for bad in ("", "7", "d", "-2h", "2 h", "1y", "2026-11-30T08:00:00", "yesterday"):
        with pytest.raises(ValueError, match=r"RFC 3339|offset"):
            parse_since(bad, AT)


def test_reads_are_bounded_by_the_limit_per_partition() -> None:
    starts = {0: 0, 1: 500, 2: 40, 3: 7}
    ends = {0: 10_000, 1: 520, 2: 40, 3: 9}
    assert read_ranges(starts, ends, 100) == {0: (9_900, 10_000), 1: (500, 520), 3: (7, 9)}


@given(
    st.dictionaries(
        st.integers(0, 11), st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=12
    ),
    st.integers(1, 1000),
)
def test_read_ranges_stay_in_the_window_and_hold_its_newest(
    windows: dict[int, tuple[int, int]], limit: int
) -> None:
    starts = {p: min(a, b) for p, (a, b) in windows.items()}
    ends = {p: max(a, b) for p, (a, b) in windows.items()}
    ranges = read_ranges(starts, ends, limit)
    for p, (first, end) in ranges.items():
        assert starts[p] <= first < end == ends[p]
        assert end - first == min(limit, ends[p] - starts[p])
    assert set(ranges) == {p for p in windows if starts[p] < ends[p]}
