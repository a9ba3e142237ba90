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
from tests.corpus import BadRecord, bad_corpus

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
