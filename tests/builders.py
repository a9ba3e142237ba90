"""Small builders of contract records for tests (valid by default, overridable per field)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.models import AssetEvent, LoanRequest, RepaymentEvent, SpendingEvent

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ts(days_ago: float = 0, *, now: datetime = NOW) -> str:
    """An RFC 3339 timestamp ``days_ago`` before ``now``."""
    return (now - timedelta(days=days_ago)).isoformat()


def repayment_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "r-1",
        "user_id": "u-1",
        "occurred_at": ts(1),
        "loan_id": "loan-1",
        "amount_due": "100.00",
        "amount_paid": "100.00",
        "days_past_due": 0,
        "outstanding_balance": "900.00",
    }
    doc.update(overrides)
    return doc


def spending_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "s-1",
        "user_id": "u-1",
        "occurred_at": ts(1),
        "amount": "25.50",
        "category": "groceries",
        "merchant_id": "m-1",
    }
    doc.update(overrides)
    return doc


def asset_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "a-1",
        "user_id": "u-1",
        "occurred_at": ts(1),
        "asset_type": "deposit",
        "value": "5000.00",
        "verified": True,
    }
    doc.update(overrides)
    return doc


def request_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "request_id": "q-1",
        "user_id": "u-1",
        "requested_at": ts(0),
        "amount": "1000.00",
        "term_months": 12,
        "displayed_status": "closed",
    }
    doc.update(overrides)
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def repayment(**overrides: Any) -> RepaymentEvent:
    return RepaymentEvent.model_validate(repayment_doc(**overrides))


def spending(**overrides: Any) -> SpendingEvent:
    return SpendingEvent.model_validate(spending_doc(**overrides))


def asset(**overrides: Any) -> AssetEvent:
    return AssetEvent.model_validate(asset_doc(**overrides))


def loan_request(**overrides: Any) -> LoanRequest:
    return LoanRequest.model_validate(request_doc(**overrides))


def money(text: str) -> Decimal:
    return Decimal(text)
