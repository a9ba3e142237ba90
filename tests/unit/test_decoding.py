"""Decoding: every kind of bad input raises RejectedRecord with a specific code, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.models import MONEY_MAX, AssetEvent, LoanRequest, RepaymentEvent, SpendingEvent
from streams.core.decoding import (
    DecodeLimits,
    RecordKind,
    RejectCode,
    RejectedRecord,
    decode_record,
)
from tests.builders import (
    NOW,
    asset_doc,
    encode,
    repayment_doc,
    request_doc,
    spending_doc,
    ts,
)
from tests.corpus import BadRecord, bad_corpus
from tests.properties import examples

LIMITS = DecodeLimits(max_record_bytes=64 * 1024)


def decode(kind: RecordKind, value: bytes | None, key: bytes | None = b"u-1") -> Any:
    return decode_record(kind, key, value, now=NOW, limits=LIMITS)


def code_of(kind: RecordKind, value: bytes | None, key: bytes | None = b"u-1") -> RejectCode:
    with pytest.raises(RejectedRecord) as info:
        decode(kind, value, key)
    return info.value.code


def test_valid_records_decode_to_their_models() -> None:
    assert isinstance(decode(RecordKind.REPAYMENT, encode(repayment_doc())), RepaymentEvent)
    assert isinstance(decode(RecordKind.ASSET, encode(asset_doc())), AssetEvent)
    assert isinstance(decode(RecordKind.LOAN_REQUEST, encode(request_doc())), LoanRequest)


def test_json_numbers_are_exact_decimals() -> None:
    raw = (
        b'{"event_id":"r","user_id":"u-1","occurred_at":"2026-11-27T00:00:00Z",'
        b'"loan_id":"l","amount_due":0.1,"amount_paid":9999999999.99,"days_past_due":0,'
        b'"outstanding_balance":1e3}'
    )
    event = decode(RecordKind.REPAYMENT, raw)
    assert event.amount_due == Decimal("0.10")
    assert event.amount_paid == Decimal("9999999999.99")
    assert event.outstanding_balance == Decimal("1000.00")


CORPUS = bad_corpus(NOW)


def test_the_corpus_has_at_least_40_distinct_cases() -> None:
    assert len({c.name for c in CORPUS}) == len(CORPUS) >= 40
    assert len({c.value for c in CORPUS}) >= 40


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input_is_rejected_with_a_specific_code(case: BadRecord) -> None:
    limits = DecodeLimits(max_record_bytes=64 * 1024)
    with pytest.raises(RejectedRecord) as info:
        decode_record(case.kind, case.key, case.value, now=NOW, limits=limits)
    assert info.value.code == case.code


def test_messages_name_the_field_but_not_the_value() -> None:
    with pytest.raises(RejectedRecord) as info:
        decode(RecordKind.REPAYMENT, encode(repayment_doc(loan_id="secret value!")))
    assert "loan_id" in info.value.message
    assert "secret value!" not in info.value.message


def test_future_tolerance_is_configurable() -> None:
    lenient = DecodeLimits(future_tolerance=timedelta(days=1))
    doc = spending_doc(occurred_at=ts(-0.5))
    event = decode_record(RecordKind.SPENDING, b"u-1", encode(doc), now=NOW, limits=lenient)
    assert isinstance(event, SpendingEvent)
    assert event.occurred_at > NOW


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
FIELD_NAMES = sorted(
    set(repayment_doc()) | set(spending_doc()) | set(asset_doc()) | set(request_doc())
)


def _assert_accepted_is_sane(record: Any) -> None:
    for name, value in record.__dict__.items():
        if isinstance(value, Decimal):
            assert value.is_finite(), name
            assert Decimal(0) <= value <= MONEY_MAX, name


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(RecordKind)), key=st.binary(max_size=8), value=st.binary())
def test_arbitrary_bytes_raise_only_rejected_record(
    kind: RecordKind, key: bytes, value: bytes
) -> None:
    try:
        record = decode_record(kind, key, value, now=NOW, limits=LIMITS)
    except RejectedRecord:
        return
    _assert_accepted_is_sane(record)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(list(RecordKind)),
    base=st.sampled_from([repayment_doc(), spending_doc(), asset_doc(), request_doc()]),
    changes=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=4),
)
def test_arbitrary_json_raises_only_rejected_record(
    kind: RecordKind, base: dict[str, Any], changes: dict[str, Any]
) -> None:
    doc = {**base, **changes}
    try:
        value = json.dumps(doc).encode()
    except (ValueError, TypeError):
        return
    try:
        record = decode_record(kind, b"u-1", value, now=NOW, limits=LIMITS)
    except RejectedRecord:
        return
    _assert_accepted_is_sane(record)


@pytest.mark.parametrize(
    "number",
    [
        b"1e999999999999999999",
        b"1e-999999999999999999",
        b"1e-1000000000000000000000000",
        b"1e1000000000000000000000000",
        b"1" * 5000,
        b"-" + b"9" * 5000,
        b"0." + b"0" * 5000 + b"1",
        b"-0.0",
        b"-0e5",
        b"1E+2",
        b"0.10e1",
    ],
)
@pytest.mark.parametrize("field", ["amount", "unknown_field", "days_past_due"])
def test_any_json_number_anywhere_raises_only_rejected_record(number: bytes, field: str) -> None:
    kind = RecordKind.REPAYMENT if field == "days_past_due" else RecordKind.SPENDING
    doc = repayment_doc() if field == "days_past_due" else spending_doc()
    value = encode({**doc, field: "N"}).replace(b'"N"', number)
    try:
        record = decode(kind, value)
    except RejectedRecord:
        return
    _assert_accepted_is_sane(record)
    for amount in (getattr(record, "amount", None), getattr(record, "days_past_due", None)):
        assert amount is None or not str(amount).startswith("-")


def test_header_names_must_be_utf8_and_values_are_opaque() -> None:
    value = encode(spending_doc())
    fine = [("traceparent", b"00-ab"), ("名前", None), ("empty", b""), ("bin", b"\xff\x00")]
    event = decode_record(RecordKind.SPENDING, b"u-1", value, now=NOW, limits=LIMITS, headers=fine)
    assert isinstance(event, SpendingEvent)
    # How the tolerant record parser hands over the name b"n\xffame".
    bad = [*fine, (b"n\xffame".decode("utf-8", "surrogateescape"), b"v")]
    with pytest.raises(RejectedRecord) as info:
        decode_record(RecordKind.SPENDING, b"u-1", value, now=NOW, limits=LIMITS, headers=bad)
    assert info.value.code == RejectCode.INVALID_HEADER


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-27T09:30:00Z",
        "2026-11-27t09:30:00z",
        "2026-11-27T09:30:00.5+08:00",
        "2026-11-27T09:30:00.123456789-00:00",
        "2026-11-27T09:30:00+23:59",
    ],
)
def test_rfc3339_timestamps_are_accepted_in_all_their_forms(stamp: str) -> None:
    event = decode(RecordKind.SPENDING, encode(spending_doc(occurred_at=stamp)))
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("stamp", "code"),
    [
        ("1764236400", RejectCode.INVALID_TIMESTAMP),
        ("1764236400.5", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27 09:30:00Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30:00+0800", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30:00,5Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T24:00:00Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30:00+24:00", RejectCode.INVALID_TIMESTAMP),
        (" 2026-11-27T09:30:00Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30:00Z\n", RejectCode.INVALID_TIMESTAMP),
        ("0000-01-01T00:00:00Z", RejectCode.INVALID_TIMESTAMP),
        ("2026-11-27T09:30:00", RejectCode.NAIVE_TIMESTAMP),
        ("0001-01-01T00:00:00+14:00", RejectCode.ANCIENT_TIMESTAMP),
        ("0001-01-01T00:00:00Z", RejectCode.ANCIENT_TIMESTAMP),
        ("9999-12-31T23:59:59-14:00", RejectCode.FUTURE_TIMESTAMP),
        ("9999-12-31T23:59:59.999999Z", RejectCode.FUTURE_TIMESTAMP),
    ],
)
def test_other_timestamps_are_rejected_with_a_timestamp_code(stamp: str, code: RejectCode) -> None:
    assert code_of(RecordKind.SPENDING, encode(spending_doc(occurred_at=stamp))) == code
    assert code_of(RecordKind.LOAN_REQUEST, encode(request_doc(requested_at=stamp))) == code


DOC_OF_KIND = {
    RecordKind.REPAYMENT: repayment_doc(),
    RecordKind.SPENDING: spending_doc(),
    RecordKind.ASSET: asset_doc(),
    RecordKind.LOAN_REQUEST: request_doc(),
}
TIMESTAMP_CODES = {
    RejectCode.INVALID_TIMESTAMP,
    RejectCode.NAIVE_TIMESTAMP,
    RejectCode.FUTURE_TIMESTAMP,
    RejectCode.ANCIENT_TIMESTAMP,
}
#: Any wall-clock time of datetime's range, one within a day of either end (where an offset
#: takes it out of range in UTC), or one near NOW (most of which is accepted).
moments = st.one_of(
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.datetimes(min_value=datetime.min, max_value=datetime.min + timedelta(days=1)),
    st.datetimes(min_value=datetime.max - timedelta(days=1), max_value=datetime.max),
    st.datetimes(
        min_value=NOW.replace(tzinfo=None) - timedelta(days=2000),
        max_value=NOW.replace(tzinfo=None) + timedelta(days=1),
    ),
)
#: RFC 3339 offsets go to ±23:59; ±14:00 is the widest in use.
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)


def rfc3339(moment: datetime, offset_minutes: int | None, fraction: bool) -> str:
    """``moment`` written as RFC 3339 with this offset (None: Z), with or without a fraction."""
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if fraction:
        text += f".{moment.microsecond:06d}"
    if offset_minutes is None:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


@settings(max_examples=examples(500), suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(list(RecordKind)),
    moment=moments,
    offset_minutes=st.none() | offsets,
    fraction=st.booleans(),
)
def test_any_rfc3339_timestamp_is_accepted_within_bounds_or_rejected_with_a_timestamp_code(
    kind: RecordKind, moment: datetime, offset_minutes: int | None, fraction: bool
) -> None:
    field = "requested_at" if kind is RecordKind.LOAN_REQUEST else "occurred_at"
    value = encode({**DOC_OF_KIND[kind], field: rfc3339(moment, offset_minutes, fraction)})
    try:
        record = decode_record(kind, b"u-1", value, now=NOW, limits=LIMITS)
    except RejectedRecord as rejected:
        code: RejectCode | None = rejected.code
    else:
        code = None
    if code is not None:
        assert code in TIMESTAMP_CODES
        return
    stamp = getattr(record, field)
    assert stamp.tzinfo is UTC
    assert NOW - LIMITS.horizon <= stamp <= NOW + LIMITS.future_tolerance


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(list(RecordKind)),
    stamp=st.text(max_size=40)
    # Unix seconds within the horizon, which a lenient parser takes.
    | st.integers(int(NOW.timestamp()) - 10**8, int(NOW.timestamp())).map(str),
)
def test_any_text_as_a_timestamp_raises_only_rejected_record(kind: RecordKind, stamp: str) -> None:
    field = "requested_at" if kind is RecordKind.LOAN_REQUEST else "occurred_at"
    value = encode({**DOC_OF_KIND[kind], field: stamp})
    try:
        decode_record(kind, b"u-1", value, now=NOW, limits=LIMITS)
    except RejectedRecord as rejected:
        code: RejectCode | None = rejected.code
    else:
        code = None
    if code is not None:
        assert code in TIMESTAMP_CODES
        return
    # Accepted: a full date, a "T" and a full time (never Unix seconds or a space).
    assert len(stamp) >= 20
    assert stamp[10] in "Tt"
