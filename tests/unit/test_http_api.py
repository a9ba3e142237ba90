"""The HTTP decision API's pure half: a body is refused exactly as the worker's decoder would
refuse the same record (415, 413, 422 naming each field), and its other answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.http import DecisionPending, Problem
from schemas.models import LoanRequest
from streams.core.decoding import (
    DecodeLimits,
    RecordKind,
    RejectCode,
    RejectedRecord,
    decode_record,
)
from streams.core.http_api import (
    Refused,
    Reply,
    busy_reply,
    conflict_reply,
    lookup_ids,
    pending_reply,
    poll_path,
    read_loan_request,
    timeout_reply,
    unavailable_reply,
)
from tests.builders import NOW, encode, loan_request, request_doc
from tests.corpus import bad_corpus

LIMITS = DecodeLimits(max_record_bytes=64 * 1024)
JSON = "application/json"
#: Faults of the Kafka record around the value: an HTTP body has no key and no headers.
RECORD_ONLY = {RejectCode.EMPTY_KEY, RejectCode.KEY_MISMATCH, RejectCode.INVALID_HEADER}


def read(body: bytes, content_type: str | None = JSON) -> LoanRequest:
    return read_loan_request(body, content_type, now=NOW, limits=LIMITS)


def refused(body: bytes, content_type: str | None = JSON) -> tuple[Reply, Problem]:
    with pytest.raises(Refused) as info:
        read(body, content_type)
    reply = info.value.reply
    assert reply.content_type == "application/problem+json"
    document = Problem.model_validate_json(reply.body)
    assert document.status == reply.status
    return reply, document


def test_a_valid_body_is_the_request_the_agent_will_read() -> None:
    body = encode(request_doc(amount=2500, note="ignored"))
    assert read(body) == loan_request(amount=2500)
    assert read(body, "application/json; charset=UTF-8") == loan_request(amount=2500)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ],
)
def test_anything_but_json_is_415(content_type: str | None) -> None:
    reply, document = refused(encode(request_doc()), content_type)
    assert reply.status == 415
    assert document.type == "urn:creditline:problem:unsupported-media-type"


def test_a_body_over_the_record_limit_is_413() -> None:
    body = encode(request_doc(padding="x" * LIMITS.max_record_bytes))
    reply, document = refused(body)
    assert reply.status == 413
    assert [(e.field, e.code) for e in document.errors] == [("", "OVERSIZED")]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (encode(request_doc(amount="-5")), [("amount", "WRONG_TYPE")]),
        (encode(request_doc(amount="0")), [("amount", "AMOUNT_OUT_OF_RANGE")]),
        (encode(request_doc(amount="12.345")), [("amount", "TOO_MANY_DECIMALS")]),
        (
            encode({k: v for k, v in request_doc().items() if k != "user_id"}),
            [("user_id", "MISSING_FIELD")],
        ),
        (
            encode(request_doc(user_id=None, term_months=40)),
            [("user_id", "NULL_FIELD"), ("term_months", "OUT_OF_RANGE")],
        ),
        (b"nonsense", [("", "NOT_JSON")]),
        (b"[1, 2]", [("", "NOT_OBJECT")]),
        (b"", [("", "NOT_JSON")]),
        (b'{"amount": 1, "amount": 2}', [("", "DUPLICATE_KEY")]),
        (
            encode(request_doc(requested_at="2026-11-28T13:00:00Z")),
            [("requested_at", "FUTURE_TIMESTAMP")],
        ),
    ],
)
def test_each_fault_is_422_naming_its_field(body: bytes, errors: list[tuple[str, str]]) -> None:
    reply, document = refused(body)
    assert reply.status == 422
    assert [(e.field, e.code) for e in document.errors] == errors
    # One clear message per problem, each naming its field, never the value.
    assert document.detail == "; ".join(
        f"{e.field or 'body'}: {e.message}" for e in document.errors
    )
    assert b"12.345" not in reply.body


@pytest.mark.parametrize(
    "case",
    [c for c in bad_corpus(NOW) if c.kind is RecordKind.LOAN_REQUEST and c.code not in RECORD_ONLY],
    ids=lambda c: c.name,
)
def test_a_body_gets_the_code_its_record_would_be_dead_lettered_with(case: object) -> None:
    from tests.corpus import BadRecord

    assert isinstance(case, BadRecord)
    reply, document = refused(case.value or b"")
    assert reply.status == (413 if case.code is RejectCode.OVERSIZED else 422)
    assert document.errors[0].code == case.code.value


@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            encode,
            st.dictionaries(
                st.sampled_from(sorted(request_doc())),
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=20),
                    st.sampled_from(list(request_doc().values())),
                ),
            ),
        ),
    )
)
def test_the_api_and_the_agent_agree_on_every_body(body: bytes) -> None:
    """Whatever the body, the API accepts it exactly when the agent would accept the record
    keyed by its user id, with the same first code otherwise."""
    try:
        key = str(json.loads(body).get("user_id")).encode() or b"u-1"
    except Exception:
        key = b"u-1"
    try:
        agent: LoanRequest | RejectCode = decode_record(  # type: ignore[assignment]
            RecordKind.LOAN_REQUEST, key, body, now=NOW, limits=LIMITS
        )
    except RejectedRecord as rejected:
        agent = rejected.code
    try:
        api: LoanRequest | RejectCode = read(body)
    except Refused as refusal:
        api = RejectCode(Problem.model_validate_json(refusal.reply.body).errors[0].code)
    assert api == agent


def test_lookups_check_both_ids_as_the_contract_types_them() -> None:
    assert lookup_ids("q-1", "u-1") == ("q-1", "u-1")
    with pytest.raises(Refused) as info:
        lookup_ids("q 1", None)
    document = Problem.model_validate_json(info.value.reply.body)
    assert info.value.reply.status == 422
    assert [(e.field, e.code) for e in document.errors] == [
        ("request_id", "INVALID_ID"),
        ("user_id", "MISSING_FIELD"),
    ]


def test_the_poll_address_names_the_request_and_its_user() -> None:
    assert poll_path("q:1.a", "u-1") == "/v1/decisions/q%3A1.a?user_id=u-1"


def test_a_timeout_names_the_request_and_where_to_poll() -> None:
    request = loan_request(request_id="q-9", user_id="u-42")
    reply = timeout_reply(request, 2.5)
    document = Problem.model_validate_json(reply.body)
    assert (reply.status, document.status, document.request_id) == (504, 504, "q-9")
    assert document.poll == "/v1/decisions/q-9?user_id=u-42"
    assert dict(reply.headers) == {"Retry-After": "1", "Location": document.poll}
    assert "2.5 s" in document.detail


def test_the_other_answers() -> None:
    request = loan_request(request_id="q-9", user_id="u-42")
    assert conflict_reply(request).status == 409
    assert busy_reply(3).status == 429
    assert "Retry-After" in dict(busy_reply(3).headers)
    assert unavailable_reply("x", "q-9").status == 503
    pending = pending_reply("q-9", "u-42")
    assert pending.status == 202
    assert (
        DecisionPending.model_validate_json(pending.body).poll == "/v1/decisions/q-9?user_id=u-42"
    )
