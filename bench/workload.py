"""Synthetic benchmark load: ~60 % spending, 30 % repayments, 10 % assets, valid records."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.models import DisplayedStatus, LoanRequest
from streams.settings import Settings
from streams.topics import Topics

Record = tuple[str, bytes, bytes]


def bench_records(events: int, users: int, seed: int, settings: Settings) -> Iterator[Record]:
    """``events`` records spread over ``users`` users, as (topic, key, value)."""
    topics = Topics.from_settings(settings)
    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(events):
        user = f"b{rng.randrange(users):07d}"
        at = (now - timedelta(seconds=rng.randrange(300 * 86400))).isoformat()
        roll = rng.random()
        doc: dict[str, Any]
        if roll < 0.6:
            topic = topics.spending
            doc = {
                "event_id": f"e{seed}-{i}",
                "user_id": user,
                "occurred_at": at,
                "amount": f"{rng.randint(100, 50000) / 100:.2f}",
                "category": "groceries",
            }
        elif roll < 0.9:
            topic = topics.repayments
            due = rng.randint(5, 30) * 100
            late = rng.random() < 0.1
            doc = {
                "event_id": f"e{seed}-{i}",
                "user_id": user,
                "occurred_at": at,
                "loan_id": f"{user}-l",
                "amount_due": due,
                "amount_paid": 0 if late else due,
                "days_past_due": rng.choice((5, 35)) if late else 0,
                "outstanding_balance": rng.randint(0, 200) * 100,
            }
        else:
            topic = topics.assets
            doc = {
                "event_id": f"e{seed}-{i}",
                "user_id": user,
                "occurred_at": at,
                "asset_type": rng.choice(("deposit", "income", "investment")),
                "value": rng.randint(0, 100000),
                "verified": rng.random() < 0.5,
            }
        yield topic, user.encode(), json.dumps(doc).encode()


def bench_request(topic: str, request_id: str, user: str) -> Record:
    """A loan request of ``user`` for 500.00 over 6 months, the line shown as closed, as a
    client sends it: dated when asked. (One instant for a whole run made each request older
    than the fold's last review, judged from the user's ledger.)"""
    req = LoanRequest(
        request_id=request_id,
        user_id=user,
        requested_at=datetime.now(UTC),
        amount=Decimal("500.00"),
        term_months=6,
        displayed_status=DisplayedStatus.CLOSED,
    )
    return topic, user.encode(), req.model_dump_json().encode()
