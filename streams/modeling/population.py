"""A simulated population that defaults: latent risk drives both what users do and whether they
reach 90 days past due later. Independent of every scorecard (nothing here reads one).

Each user has a **latent risk** ``z ~ N(risk_shift, 1)`` and, month by month, a behavioural
risk ``r_t = z + u_t + m_t`` (``u_t`` a personal AR(1) shock: recent behaviour says more than
old; ``m_t`` a mild economy-wide cycle shared by everyone in a month). From them:

* **profile** (at joining): monthly income (lower for higher ``z``), whether it is declared
  (riskier users withhold it more often) and verified, an inflated figure when it is not
  verified; a deposit, verified or not; a loan of a few months' income (larger for higher
  ``z``: debt-to-income); unverified investments or property, *independent of risk* (what
  people merely declare says nothing here);
* **repayments** (monthly, one loan at a time, a new loan after one is repaid): a current
  account misses the instalment with probability ``σ(a + b·r_t + new-account term)`` or pays
  it a few days late; an account in arrears cures (pays everything due, late) or rolls one
  bucket further: 1–29, 31–59, 61–89, then 91+ days past due — **default**. A defaulted
  account reports two more missed months and then goes silent (charged off);
* **spending**: active months with a personal frequency, amounts a share of income.

The outcome is in the events themselves (days past due on repayments), so labels come from
the stream like any observed history (:func:`streams.core.labels.label_points`). Pure:
``PopulationSpec`` fully determines the events.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core.labels import add_months

_CATEGORIES = ("groceries", "transport", "utilities", "dining", "travel", "online_retail")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """The coefficients of the default process (documented defaults)."""

    #: Missing an instalment when current: σ(miss_base + miss_risk · r_t (+ new_account)).
    miss_base: float = -3.6
    miss_risk: float = 1.25
    #: Extra log-odds of missing in the first 6 months of an account's first loan.
    new_account: float = 0.5
    #: Paying a few days late (but in full) when current: σ(late_base + late_risk · r_t).
    late_base: float = -2.6
    late_risk: float = 0.9
    #: Curing from k buckets of arrears: σ(cure_base − cure_risk · r_t − cure_depth · k).
    cure_base: float = 0.9
    cure_risk: float = 0.9
    cure_depth: float = 0.5
    #: Personal shock u_t = shock_memory · u_{t−1} + N(0, shock_sd).
    shock_memory: float = 0.8
    shock_sd: float = 0.45
    #: Amplitude of the economy-wide cycle m_t (period 30 months).
    cycle: float = 0.15


@dataclass(frozen=True, slots=True)
class PopulationSpec:
    """Who is simulated and over which months."""

    users: int = 3000
    seed: int = 1
    start: datetime = datetime(2022, 1, 1, tzinfo=UTC)
    #: The end of observation: no event after it.
    end: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    #: Mean of the latent risk: 0 for the development population, > 0 for a riskier one.
    risk_shift: float = 0.0
    prefix: str = "p"
    behaviour: Behaviour = field(default_factory=Behaviour)


@dataclass(frozen=True, slots=True)
class SimulatedUser:
    """A user's latent risk and events (the risk is for documentation and tests only)."""

    user_id: str
    latent_risk: float
    events: list[InputEvent]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _money(value: float) -> Decimal:
    return Decimal(str(round(max(value, 0.0), 2))).quantize(_CENT)


class _User:
    """Builds one user's events month by month."""

    def __init__(self, spec: PopulationSpec, index: int, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.user_id = f"{spec.prefix}-{index:06d}"
        self.sequence = 0
        self.events: list[InputEvent] = []
        self.z = rng.gauss(spec.risk_shift, 1.0)

    def _id(self, kind: str) -> str:
        self.sequence += 1
        return f"{self.user_id}:{kind}:{self.sequence}"

    def _at(self, month: datetime, day: float) -> datetime:
        moment = month + timedelta(days=day, minutes=self.rng.randint(0, 600))
        return min(moment, self.spec.end - timedelta(seconds=1))

    def asset(self, when: datetime, kind: AssetType, value: float, verified: bool) -> None:
        self.events.append(
            AssetEvent(
                event_id=self._id("a"),
                user_id=self.user_id,
                occurred_at=when,
                asset_type=kind,
                value=_money(value),
                verified=verified,
            )
        )

    def repayment(
        self, when: datetime, loan: str, due: Decimal, paid: Decimal, dpd: int, balance: Decimal
    ) -> None:
        self.events.append(
            RepaymentEvent(
                event_id=self._id("r"),
                user_id=self.user_id,
                occurred_at=when,
                loan_id=loan,
                amount_due=due,
                amount_paid=paid,
                days_past_due=dpd,
                outstanding_balance=balance,
            )
        )

    def spending(self, when: datetime, amount: float) -> None:
        self.events.append(
            SpendingEvent(
                event_id=self._id("s"),
                user_id=self.user_id,
                occurred_at=when,
                amount=_money(max(amount, 1.0)),
                category=self.rng.choice(_CATEGORIES),
            )
        )

    def simulate(self, months: list[datetime], cycle: list[float]) -> None:
        rng, z, b = self.rng, self.z, self.spec.behaviour
        join = rng.randrange(0, max(1, len(months) - 6))
        income = min(max(math.exp(rng.gauss(math.log(9000) - 0.25 * z, 0.45)), 2000), 200000)
        first = months[join]
        # Profile: income, deposits, declared extras.
        if rng.random() < _sigmoid(1.8 - 0.9 * z):
            verified = rng.random() < _sigmoid(0.6 - 0.8 * z)
            stated = income if verified else income * (1 + max(0.0, rng.gauss(0.1 + 0.1 * z, 0.2)))
            self.asset(self._at(first, rng.uniform(0, 20)), AssetType.INCOME, stated, verified)
        if rng.random() < _sigmoid(0.5 - 0.7 * z):
            deposit = income * math.exp(rng.gauss(1.2 - 0.5 * z, 0.9))
            verified = rng.random() < _sigmoid(0.3 - 0.6 * z)
            when = self._at(first, rng.uniform(0, 60))
            self.asset(when, AssetType.DEPOSIT, deposit, verified)
        if rng.random() < 0.3:
            kind = rng.choice((AssetType.INVESTMENT, AssetType.PROPERTY))
            value = math.exp(rng.gauss(math.log(80000), 1.0))
            self.asset(self._at(first, rng.uniform(0, 90)), kind, value, False)
        engagement = rng.uniform(0.25, 1.0)
        spend_share = rng.uniform(0.1, 0.4) * math.exp(0.15 * z)
        # Repayments: one loan at a time.
        loans = 0
        balance = Decimal(0)
        due = Decimal(0)
        loan = ""
        arrears = 0
        shock = rng.gauss(0, b.shock_sd)
        defaulted_for = 0
        due_day = rng.uniform(0, 27)
        for t in range(join, len(months)):
            month = months[t]
            tenure = t - join
            shock = b.shock_memory * shock + rng.gauss(0, b.shock_sd)
            risk = z + shock + cycle[t]
            if rng.random() < engagement:
                for _ in range(rng.randint(1, 2)):
                    self.spending(self._at(month, rng.uniform(0, 27)), income * spend_share / 2)
            if balance <= 0 and arrears == 0:
                if loans and rng.random() > 0.6:
                    continue  # no new loan this month
                loans += 1
                loan = f"{self.user_id}-loan-{loans}"
                principal = income * rng.uniform(2, 10) * math.exp(0.25 * z)
                term = rng.choice((12, 24, 36))
                balance = _money(principal)
                due = _money(principal / term)
                continue  # first instalment next month
            when = self._at(month, due_day)
            if arrears == 0:
                new = b.new_account if loans == 1 and tenure < 6 else 0.0
                if rng.random() < _sigmoid(b.miss_base + b.miss_risk * risk + new):
                    arrears = 1
                    self.repayment(when, loan, due, Decimal(0), rng.randint(1, 29), balance)
                    continue
                late = rng.random() < _sigmoid(b.late_base + b.late_risk * risk)
                balance = max(Decimal(0), balance - due)
                self.repayment(when, loan, due, due, rng.randint(3, 25) if late else 0, balance)
                continue
            if arrears >= 4:
                defaulted_for += 1
                if defaulted_for > 2:
                    return  # charged off: the account goes silent
                arrears += 1
                dpd = 30 * (arrears - 1) + rng.randint(1, 29)
                self.repayment(when, loan, due, Decimal(0), dpd, balance)
                continue
            if rng.random() < _sigmoid(b.cure_base - b.cure_risk * risk - b.cure_depth * arrears):
                paid = due * (arrears + 1)
                balance = max(Decimal(0), balance - paid)
                # The oldest unpaid instalment is about ``arrears`` months old when cured.
                dpd = 30 * arrears - rng.randint(0, 9)
                self.repayment(when, loan, due, paid.quantize(_CENT), dpd, balance)
                arrears = 0
                continue
            arrears += 1
            dpd = 30 * (arrears - 1) + rng.randint(1, 29)
            self.repayment(when, loan, due, Decimal(0), dpd, balance)


def simulate_population(spec: PopulationSpec) -> list[SimulatedUser]:
    """Every user of the population with their events (seeded, deterministic)."""
    rng = random.Random(spec.seed)
    months = []
    month = spec.start
    while month < spec.end:
        months.append(month)
        month = add_months(month, 1)
    cycle = [spec.behaviour.cycle * math.sin(2 * math.pi * t / 30) for t in range(len(months))]
    users = []
    for index in range(spec.users):
        user = _User(spec, index, random.Random(rng.getrandbits(64)))
        user.simulate(months, cycle)
        if user.events:
            users.append(SimulatedUser(user.user_id, user.z, user.events))
    return users


def population_events(spec: PopulationSpec) -> list[InputEvent]:
    """All events of the population, user after user (order does not matter to the fold)."""
    return [event for user in simulate_population(spec) for event in user.events]
