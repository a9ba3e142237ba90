"""The wire models: money, timestamps, ids, forward compatibility, and the published schemas."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.export import SCHEMA_DIR, export_schemas, render_schema
from schemas.models import CONTRACT_MODELS, LoanDecision, RepaymentEvent, format_money
from tests.builders import loan_request, repayment, repayment_doc, spending


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (100, "100.00"),
        ("100", "100.00"),
        ("0.5", "0.50"),
        (Decimal("12.34"), "12.34"),
        ("10000000000", "10000000000.00"),
        (0, "0.00"),
        ("7.10", "7.10"),
        (Decimal("1.500"), "1.50"),
        (Decimal("-0.0"), "0.00"),
    ],
)
def test_money_accepts_numbers_and_decimal_strings(given: object, expected: str) -> None:
    event = repayment(amount_paid=given)
    assert format_money(event.amount_paid) == expected
    assert isinstance(event.amount_paid, Decimal)


@pytest.mark.parametrize(
    ("given", "error_type"),
    [
        ("-1", "money_type"),
        (-1, "money_out_of_range"),
        ("10000000000.01", "money_out_of_range"),
        (Decimal("1E+309"), "money_out_of_range"),
        (Decimal("NaN"), "money_not_finite"),
        (Decimal("Infinity"), "money_not_finite"),
        (float("nan"), "money_not_finite"),
        ("1.005", "money_too_many_decimals"),
        (Decimal("1.005"), "money_too_many_decimals"),
        (True, "money_type"),
        ("1e3", "money_type"),
        ([], "money_type"),
    ],
)
def test_money_rejects_what_is_not_an_exact_bounded_amount(given: object, error_type: str) -> None:
    with pytest.raises(ValidationError) as info:
        repayment(amount_paid=given)
    assert info.value.errors()[0]["type"] == error_type


def test_spending_and_loan_amounts_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        spending(amount="0")
    with pytest.raises(ValidationError):
        loan_request(amount=0)


def test_timestamps_need_an_offset_and_are_normalised_to_utc() -> None:
    event = repayment(occurred_at="2026-01-01T08:00:00+08:00")
    assert event.occurred_at.tzinfo is UTC
    assert event.occurred_at.hour == 0
    for bad in ("2026-01-01T08:00:00", 1767225600, "yesterday"):
        with pytest.raises(ValidationError):
            repayment(occurred_at=bad)


def test_unknown_fields_are_ignored() -> None:
    event = RepaymentEvent.model_validate({**repayment_doc(), "channel": "app", "v": 2})
    assert not hasattr(event, "channel")


@pytest.mark.parametrize("user_id", ["", "a" * 65, "user id", "user/1", "用户", "u{1}"])
def test_user_ids_are_restricted(user_id: str) -> None:
    with pytest.raises(ValidationError):
        repayment(user_id=user_id)


def test_decision_serialises_money_as_two_place_strings() -> None:
    decision = LoanDecision.model_validate(
        {
            "request_id": "q",
            "user_id": "u",
            "decided_at": "2026-01-01T00:00:00Z",
            "outcome": "approved",
            "requested_amount": 5,
            "approved_amount": "5",
            "credit_limit": "1000",
            "available_limit": "995.5",
            "score": 700,
            "score_as_of": None,
            "effective_status": "open",
            "displayed_status": "closed",
            "overrides_displayed_status": True,
            "reasons": [],
            "policy_version": "p",
            "scorer_version": "s",
        }
    )
    text = decision.model_dump_json()
    assert '"available_limit":"995.50"' in text
    assert '"requested_amount":"5.00"' in text


@pytest.mark.parametrize("name", sorted(CONTRACT_MODELS))
def test_published_json_schema_matches_the_model(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"run `creditline schemas export` to create {path.name}"
    assert path.read_text() == render_schema(name), (
        f"{path.name} drifted from the model: run `creditline schemas export`"
    )


def test_export_check_lists_nothing_when_up_to_date() -> None:
    assert export_schemas(SCHEMA_DIR, check=True) == []
