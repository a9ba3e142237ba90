"""The dead-letter header layout: the worker's headers cannot be forged by a producer."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas import dead_letter
from streams.adapters.kafka_sink import InboundRecord, dead_letter_headers
from streams.core.dead_letters import Layout, parse_headers

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
