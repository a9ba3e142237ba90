"""The consumed-record and dead-letter formats: headers read alike by every reader, names
that were not UTF-8 written escaped, dead letters that always fit their topic."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import dead_letter
from streams.adapters.kafka.sink import inbound_headers, writable_headers
from streams.core.dead_letters import dead_letter_headers, fit_dead_letter
from streams.ports import InboundRecord

LIMIT = 1 << 20


def test_null_header_values_are_read_as_empty_by_every_reader() -> None:
    consumed = [("a", None), ("b", b""), ("c", bytearray(b"x"))]
    assert inbound_headers(consumed) == [("a", b""), ("b", b""), ("c", b"x")]
    assert inbound_headers(None) == []


def test_a_name_that_was_not_utf8_is_written_with_escapes_and_others_unchanged() -> None:
    name = b"n\xffame".decode("utf-8", "surrogateescape")
    headers = [("ok", b"1"), ("名前", b""), (name, b"v")]
    written = writable_headers(headers)
    assert written == [("ok", b"1"), ("名前", b""), ("n\\xffame", b"v")]
    for written_name, _ in written:
        written_name.encode("utf-8")  # what aiokafka's producer does with it


Headers = list[tuple[str, bytes]]


def letter(key: bytes | None, value: bytes | None, own: int = 1) -> tuple[InboundRecord, Headers]:
    record = InboundRecord("t", 0, 7, key, value, headers=[("h", b"v")] * own)
    return record, dead_letter_headers(record, "OVERSIZED", "too big", datetime.now(UTC))


def size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    return len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)


def test_a_dead_letter_that_fits_is_the_record_as_it_came() -> None:
    record, headers = letter(b"u-1", b"x" * (LIMIT // 2))
    assert fit_dead_letter(record, headers, LIMIT) == (b"u-1", record.value, headers)


def test_a_keyless_tombstone_is_dead_lettered_with_an_empty_value() -> None:
    record, headers = letter(None, None)
    assert fit_dead_letter(record, headers, LIMIT) == (None, b"", headers)


def test_a_value_too_large_to_publish_is_left_out_and_named() -> None:
    record, headers = letter(b"u-1", b"0" * (20 << 20))
    key, value, fitted = fit_dead_letter(record, headers, LIMIT)
    assert (key, value) == (b"u-1", None)
    six = len(dead_letter.DEAD_LETTER_HEADERS)
    omitted = (dead_letter.HEADER_OMITTED, f"value:{20 << 20}".encode())
    assert fitted == [*headers[:six], omitted, *headers[six:]]  # right after the worker's six
    assert size(key, value, fitted) < LIMIT


def test_a_key_too_large_leaves_out_the_key_and_the_records_headers_too() -> None:
    record, headers = letter(b"k" * LIMIT, b"{}", own=3)
    key, value, fitted = fit_dead_letter(record, headers, LIMIT)
    assert (key, value) == (None, b"")  # aiokafka sends no record without both
    assert [name for name, _ in fitted] == [
        *dead_letter.DEAD_LETTER_HEADERS,
        dead_letter.HEADER_OMITTED,
    ]
    assert dict(fitted)[dead_letter.HEADER_OMITTED] == f"value:2,key:{LIMIT},headers:3".encode()
    assert size(key, value, fitted) < LIMIT
