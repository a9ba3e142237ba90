"""A seeded synthetic population of users, for ``creditline simulate`` and the demo.

Personas (each user is one of them, in rotation):

* ``steady`` — a year of on-time repayments, verified income: displayed ``open``, approved.
* ``recovering`` — missed payments about a year ago (45 days past due), on time since, and a
  fresh verified income and deposit proof: the app still displays ``closed``, the live score
  approves (the case creditline exists for).
* ``slipping`` — on time for most of a year, then a payment 35 days past due: displayed
  ``open``, the live status is ``frozen`` and the request is declined.
* ``thin_high_earner`` — no repayment history, high verified income and deposit: displayed
  ``unknown``, approved from assets and income.

Pure: ``now`` and ``seed`` fully determine the records.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from schemas.models import (
    AssetEvent,
    AssetType,
    DisplayedStatus,
    InputEvent,
    LoanRequest,
    RepaymentEvent,
    SpendingEvent,
)
from streams.core.decoding import RecordKind

_MONTH = timedelta(days=30.4375)
_CATEGORIES = ("groceries", "transport", "utilities", "dining", "travel", "online_retail")


class Persona(StrEnum):
    """The kinds of simulated users."""

    STEADY = "steady"
    RECOVERING = "recovering"
    SLIPPING = "slipping"
    THIN_HIGH_EARNER = "thin_high_earner"


DISPLAYED: dict[Persona, DisplayedStatus] = {
    Persona.STEADY: DisplayedStatus.OPEN,
    Persona.RECOVERING: DisplayedStatus.CLOSED,
    Persona.SLIPPING: DisplayedStatus.OPEN,
    Persona.THIN_HIGH_EARNER: DisplayedStatus.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One record to publish: its kind, key, JSON value and the model it encodes."""

    kind: RecordKind
    key: bytes
    value: bytes
    model: InputEvent | LoanRequest


def _kind(model: InputEvent | LoanRequest) -> RecordKind:
    if isinstance(model, RepaymentEvent):
        return RecordKind.REPAYMENT
    if isinstance(model, SpendingEvent):
        return RecordKind.SPENDING
    if isinstance(model, AssetEvent):
        return RecordKind.ASSET
    return RecordKind.LOAN_REQUEST


def to_record(model: InputEvent | LoanRequest) -> SimulatedRecord:
    """Encode a model as the record a producer would publish."""
    return SimulatedRecord(
        _kind(model), model.user_id.encode(), model.model_dump_json().encode(), model
    )


def persona_of(index: int) -> Persona:
    """Personas are assigned in rotation so every population has all of them."""
    return list(Persona)[index % len(Persona)]


class _Builder:
    def __init__(self, user_id: str, now: datetime, rng: random.Random) -> None:
        self.user_id = user_id
        self.now = now
        self.rng = rng
        self.sequence = 0
        self.events: list[InputEvent] = []

    def _id(self, kind: str) -> str:
        self.sequence += 1
        return f"{self.user_id}:{kind}:{self.sequence}"

    def _ago(self, months: float, jitter_hours: int = 48) -> datetime:
        return self.now - _MONTH * months - timedelta(hours=self.rng.randint(0, jitter_hours))

    def repayment(
        self,
        months_ago: float,
        due: Decimal,
        paid: Decimal,
        dpd: int,
        balance: Decimal,
        loan: str = "loan-1",
    ) -> None:
        self.events.append(
            RepaymentEvent(
                event_id=self._id("rep"),
                user_id=self.user_id,
                occurred_at=self._ago(months_ago),
                loan_id=f"{self.user_id}-{loan}",
                amount_due=due,
                amount_paid=paid,
                days_past_due=dpd,
                outstanding_balance=balance,
            )
        )

    def spending(self, months_ago: float) -> None:
        amount = Decimal(self.rng.randint(2000, 60000)) / 100
        self.events.append(
            SpendingEvent(
                event_id=self._id("spend"),
                user_id=self.user_id,
                occurred_at=self._ago(months_ago, 200),
                amount=amount,
                category=self.rng.choice(_CATEGORIES),
                merchant_id=f"m{self.rng.randint(1, 500)}",
            )
        )

    def asset(self, days_ago: float, kind: AssetType, value: Decimal, verified: bool) -> None:
        self.events.append(
            AssetEvent(
                event_id=self._id("asset"),
                user_id=self.user_id,
                occurred_at=self.now - timedelta(days=days_ago),
                asset_type=kind,
                value=value,
                verified=verified,
            )
        )


def persona_history(
    persona: Persona, user_id: str, now: datetime, rng: random.Random
) -> list[InputEvent]:
    """The events that make a user of ``persona``, ending shortly before ``now``."""
    b = _Builder(user_id, now, rng)
    due = Decimal(rng.randint(8, 20) * 100)
    if persona is Persona.STEADY:
        balance = due * 20
        for month in range(12, 0, -1):
            balance -= due
            b.repayment(month, due, due, 0, balance)
        b.asset(40, AssetType.INCOME, Decimal(rng.randint(10, 15) * 1000), True)
        b.asset(35, AssetType.DEPOSIT, Decimal(rng.randint(20, 60) * 1000), False)
    elif persona is Persona.RECOVERING:
        balance = due * 14
        for month in (13, 12):
            b.repayment(month, due, Decimal(0), 20, balance)
        b.repayment(11, due, Decimal(0), 45, balance)
        for month in range(9, 0, -1):
            balance -= due
            b.repayment(month, due, due, 0, balance)
        b.asset(3, AssetType.INCOME, Decimal(rng.randint(8, 12) * 1000), True)
        b.asset(1, AssetType.DEPOSIT, Decimal(rng.randint(45, 90) * 1000), True)
    elif persona is Persona.SLIPPING:
        balance = due * 15
        for month in range(12, 1, -1):
            balance -= due
            b.repayment(month, due, due, 0, balance)
        b.repayment(0.4, due, Decimal(0), 35, balance)
        b.asset(200, AssetType.INCOME, Decimal(rng.randint(6, 10) * 1000), False)
    else:
        b.asset(20, AssetType.INCOME, Decimal(rng.randint(30, 50) * 1000), True)
        b.asset(15, AssetType.DEPOSIT, Decimal(rng.randint(150, 400) * 1000), True)
    active_months = 2 if persona is Persona.THIN_HIGH_EARNER else 6
    for month in range(active_months):
        for _ in range(rng.randint(2, 5)):
            b.spending(month + 0.1)
    return b.events


def loan_request(
    persona: Persona, user_id: str, now: datetime, rng: random.Random, sequence: int = 1
) -> LoanRequest:
    """A request from a user of ``persona``, with the (possibly stale) status the app shows."""
    return LoanRequest(
        request_id=f"{user_id}:req:{sequence}",
        user_id=user_id,
        requested_at=now,
        amount=Decimal(rng.randint(10, 50) * 100),
        term_months=rng.choice((3, 6, 12, 24)),
        displayed_status=DISPLAYED[persona],
    )


def user_id_for(index: int, prefix: str = "user") -> str:
    """The id of the ``index``-th simulated user."""
    return f"{prefix}-{index:06d}"


def population_events(
    users: int, seed: int, now: datetime, prefix: str = "user"
) -> list[InputEvent]:
    """Histories of ``users`` users (personas in rotation), in a seeded shuffled order."""
    rng = random.Random(seed)
    events: list[InputEvent] = []
    for index in range(users):
        user = user_id_for(index, prefix)
        events.extend(persona_history(persona_of(index), user, now, rng))
    rng.shuffle(events)
    return events


def population(
    users: int, seed: int, now: datetime, prefix: str = "user"
) -> Iterator[SimulatedRecord]:
    """:func:`population_events` as records to publish."""
    for event in population_events(users, seed, now, prefix):
        yield to_record(event)


def loan_requests(
    users: int, seed: int, now: datetime, prefix: str = "user", sequence: int = 1
) -> list[LoanRequest]:
    """One loan request per user, personas as in :func:`population_events`."""
    rng = random.Random(seed * 7919 + sequence)
    return [
        loan_request(persona_of(index), user_id_for(index, prefix), now, rng, sequence)
        for index in range(users)
    ]


def requests(
    users: int, seed: int, now: datetime, prefix: str = "user", sequence: int = 1
) -> Iterator[SimulatedRecord]:
    """:func:`loan_requests` as records to publish."""
    for request in loan_requests(users, seed, now, prefix, sequence):
        yield to_record(request)


def requests_between(
    users: int,
    seed: int,
    start: datetime,
    end: datetime,
    per_user: int = 1,
    prefix: str = "user",
) -> list[LoanRequest]:
    """``per_user`` loan requests per user (personas as in :func:`population_events`), each
    made at a seeded instant of ``[start, end)`` (whole seconds), in order of their instants."""
    rng = random.Random(seed * 7919 + 104729)
    span = int((end - start).total_seconds())
    asks = [
        loan_request(
            persona_of(index),
            user_id_for(index, prefix),
            start + timedelta(seconds=rng.randrange(span)),
            rng,
            sequence,
        )
        for sequence in range(1, per_user + 1)
        for index in range(users)
    ]
    return sorted(asks, key=lambda r: (r.requested_at, r.request_id))
