"""Decoding: every kind of bad input raises RejectedRecord with a specific code, nothing else."""

from __future__ import annotations

import json
from datetime import timedelta
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


BAD: list[tuple[str, RecordKind, bytes | None, bytes | None, RejectCode]] = [
    ("not json", RecordKind.REPAYMENT, b"u-1", b"hello", RejectCode.NOT_JSON),
    ("truncated json", RecordKind.REPAYMENT, b"u-1", b'{"event_id":', RejectCode.NOT_JSON),
    ("invalid utf-8", RecordKind.SPENDING, b"u-1", b'{"a":"\xff\xfe"}', RejectCode.NOT_UTF8),
    ("array", RecordKind.SPENDING, b"u-1", b"[1,2]", RejectCode.NOT_OBJECT),
    ("scalar", RecordKind.SPENDING, b"u-1", b"42", RejectCode.NOT_OBJECT),
    ("null value", RecordKind.SPENDING, b"u-1", b"null", RejectCode.NOT_OBJECT),
    ("tombstone", RecordKind.SPENDING, b"u-1", None, RejectCode.NOT_JSON),
    ("empty key", RecordKind.SPENDING, b"", encode(spending_doc()), RejectCode.EMPTY_KEY),
    ("no key", RecordKind.SPENDING, None, encode(spending_doc()), RejectCode.EMPTY_KEY),
    ("key mismatch", RecordKind.SPENDING, b"u-2", encode(spending_doc()), RejectCode.KEY_MISMATCH),
    (
        "oversized",
        RecordKind.SPENDING,
        b"u-1",
        b'{"x":"' + b"a" * 70000 + b'"}',
        RejectCode.OVERSIZED,
    ),
    (
        "NaN",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc()).replace(b'"25.50"', b"NaN"),
        RejectCode.NON_FINITE_NUMBER,
    ),
    (
        "Infinity",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc()).replace(b'"25.50"', b"Infinity"),
        RejectCode.NON_FINITE_NUMBER,
    ),
    (
        "1e309",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc()).replace(b'"25.50"', b"1e309"),
        RejectCode.AMOUNT_OUT_OF_RANGE,
    ),
    (
        "negative",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(amount_paid=-5)),
        RejectCode.AMOUNT_OUT_OF_RANGE,
    ),
    (
        "over limit",
        RecordKind.ASSET,
        b"u-1",
        encode(asset_doc(value="10000000000.01")),
        RejectCode.AMOUNT_OUT_OF_RANGE,
    ),
    (
        "zero spending",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(amount=0)),
        RejectCode.AMOUNT_OUT_OF_RANGE,
    ),
    (
        "three decimals",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(amount="1.005")),
        RejectCode.TOO_MANY_DECIMALS,
    ),
    (
        "missing field",
        RecordKind.REPAYMENT,
        b"u-1",
        encode({k: v for k, v in repayment_doc().items() if k != "loan_id"}),
        RejectCode.MISSING_FIELD,
    ),
    (
        "null field",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(days_past_due=None)),
        RejectCode.NULL_FIELD,
    ),
    (
        "string for int",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(days_past_due="3")),
        RejectCode.WRONG_TYPE,
    ),
    (
        "float for int",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(days_past_due=1.5)),
        RejectCode.WRONG_TYPE,
    ),
    (
        "bool for money",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(amount_due=True)),
        RejectCode.WRONG_TYPE,
    ),
    (
        "string for bool",
        RecordKind.ASSET,
        b"u-1",
        encode(asset_doc(verified="yes")),
        RejectCode.WRONG_TYPE,
    ),
    (
        "negative dpd",
        RecordKind.REPAYMENT,
        b"u-1",
        encode(repayment_doc(days_past_due=-1)),
        RejectCode.OUT_OF_RANGE,
    ),
    (
        "term 37",
        RecordKind.LOAN_REQUEST,
        b"u-1",
        encode(request_doc(term_months=37)),
        RejectCode.OUT_OF_RANGE,
    ),
    (
        "naive timestamp",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(occurred_at="2026-11-27T10:00:00")),
        RejectCode.NAIVE_TIMESTAMP,
    ),
    (
        "numeric timestamp",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(occurred_at=1767225600)),
        RejectCode.WRONG_TYPE,
    ),
    (
        "garbage timestamp",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(occurred_at="last tuesday")),
        RejectCode.INVALID_TIMESTAMP,
    ),
    (
        "future timestamp",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(occurred_at=ts(-0.01))),
        RejectCode.FUTURE_TIMESTAMP,
    ),
    (
        "ancient timestamp",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(occurred_at=ts(365 * 6))),
        RejectCode.ANCIENT_TIMESTAMP,
    ),
    (
        "long event id",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(event_id="e" * 65)),
        RejectCode.INVALID_ID,
    ),
    (
        "bad user id",
        RecordKind.SPENDING,
        b"u 1",
        encode(spending_doc(user_id="u 1")),
        RejectCode.INVALID_ID,
    ),
    (
        "unknown asset type",
        RecordKind.ASSET,
        b"u-1",
        encode(asset_doc(asset_type="crypto")),
        RejectCode.INVALID_ENUM,
    ),
    (
        "unknown displayed status",
        RecordKind.LOAN_REQUEST,
        b"u-1",
        encode(request_doc(displayed_status="maybe")),
        RejectCode.INVALID_ENUM,
    ),
    (
        "bad category",
        RecordKind.SPENDING,
        b"u-1",
        encode(spending_doc(category="Food!")),
        RejectCode.INVALID_VALUE,
    ),
]


@pytest.mark.parametrize(
    ("kind", "key", "value", "expected"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input_is_rejected_with_a_specific_code(
    kind: RecordKind, key: bytes | None, value: bytes | None, expected: RejectCode
) -> None:
    assert code_of(kind, value, key) == expected


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


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(RecordKind)), key=st.binary(max_size=8), value=st.binary())
def test_arbitrary_bytes_raise_only_rejected_record(
    kind: RecordKind, key: bytes, value: bytes
) -> None:
    try:
        record = decode_record(kind, key, value, now=NOW, limits=LIMITS)
    except RejectedRecord:
        return
    _assert_accepted_is_sane(record)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
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
