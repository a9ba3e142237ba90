"""Per-user state and the fold that builds it from input events.

The fold is commutative up to floating-point rounding: folding the same set of events in any
order gives the same state (money and counts exactly; decayed counters to ~1e-12 relative).
That is what makes redelivery and reordering harmless once duplicates are removed by
``event_id`` (the shell's job):

* decayed counters are stored relative to ``as_of``, the latest ``occurred_at`` seen; an
  older event is added with its weight already decayed to ``as_of``, a newer one first
  decays the stored values up to its own time;
* snapshots (loan balances, assets) are last-writer-wins by ``(occurred_at, event_id)``;
* monthly buckets use max (delinquency) or exact decimal sums (spending) and are pruned to
  the last :data:`MONTHS_KEPT` months before ``as_of``, whatever the arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain

from schemas.models import InputEvent, RepaymentEvent, SpendingEvent

#: Half-life of the repayment counters, by event time.
REPAYMENT_HALF_LIFE = timedelta(days=180)
#: How many calendar months of delinquency and spending buckets are kept.
MONTHS_KEPT = 24
#: Days-past-due levels whose latest occurrence is tracked; hard rules (e.g. "freeze after a
#: repayment 30+ days past due within 90 days") can name any of these levels.
DELINQUENCY_LEVELS = (1, 30, 60, 90)

_HALF_LIFE_SECONDS = REPAYMENT_HALF_LIFE.total_seconds()
_NEVER = datetime.min.replace(tzinfo=UTC)


def decay_factor(elapsed: timedelta) -> float:
    """Weight left after ``elapsed`` of event time (1.0 for zero or negative spans)."""
    seconds = elapsed.total_seconds()
    if seconds <= 0:
        return 1.0
    return float(0.5 ** (seconds / _HALF_LIFE_SECONDS))


def month_index(moment: datetime) -> int:
    """Months since year 0 of a UTC timestamp: buckets compare as integers."""
    return moment.year * 12 + moment.month - 1


@dataclass(frozen=True, slots=True)
class LoanSnapshot:
    """The latest known balance of one loan."""

    occurred_at: datetime
    event_id: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class AssetSnapshot:
    """The latest known value of one asset type."""

    occurred_at: datetime
    event_id: str
    value: Decimal
    verified: bool


@dataclass(frozen=True, slots=True)
class UserState:
    """Everything folded from one user's events. Decayed counters are as of ``as_of``."""

    user_id: str
    as_of: datetime
    first_event_at: datetime
    repayments: int = 0
    spendings: int = 0
    asset_updates: int = 0
    on_time: float = 0.0
    late: float = 0.0
    missed: float = 0.0
    #: level (days past due) → latest occurred_at of a repayment at least that late.
    last_delinquency_at: Mapping[int, datetime] = field(default_factory=dict)
    #: month index → worst days past due seen that month.
    delinquency_by_month: Mapping[int, int] = field(default_factory=dict)
    #: month index → total spending that month.
    spend_by_month: Mapping[int, Decimal] = field(default_factory=dict)
    loans: Mapping[str, LoanSnapshot] = field(default_factory=dict)
    assets: Mapping[str, AssetSnapshot] = field(default_factory=dict)

    @property
    def events_applied(self) -> int:
        """How many distinct events were folded in."""
        return self.repayments + self.spendings + self.asset_updates


def _newer(
    occurred_at: datetime, event_id: str, current: LoanSnapshot | AssetSnapshot | None
) -> bool:
    return current is None or (occurred_at, event_id) > (current.occurred_at, current.event_id)


def _counted(
    event: RepaymentEvent, weight: float, on_time: float, late: float, missed: float
) -> tuple[float, float, float]:
    """The decayed counters after counting a repayment of ``weight`` as on time, late or missed
    (an event with nothing due and nothing paid counts as none of them)."""
    if event.amount_due > 0 or event.amount_paid > 0:
        if event.amount_paid < event.amount_due:
            missed += weight
        elif event.days_past_due == 0:
            on_time += weight
        else:
            late += weight
    return on_time, late, missed


def apply_event(state: UserState | None, event: InputEvent) -> UserState:
    """Fold one (not yet applied) event into a user's state and return the new state."""
    folded = fold_events(state, (event,))
    assert folded is not None  # one event always makes a state
    return folded


def fold_events(state: UserState | None, events: Iterable[InputEvent]) -> UserState | None:
    """Fold events (already deduplicated) into ``state``, in the order given.

    One pass over local accumulators, with a single frozen state built at the end. The
    rules: a newer event first decays the counters to its time and prunes old months;
    repayments count (decayed) as on time, late or missed and record delinquency; spending
    is summed per kept month; loan and asset snapshots are last-writer-wins.
    """
    remaining = iter(events)
    if state is None:
        first = next(remaining, None)
        if first is None:
            return None
        remaining = chain((first,), remaining)
        state = UserState(
            user_id=first.user_id, as_of=first.occurred_at, first_event_at=first.occurred_at
        )
    user_id = state.user_id
    as_of = state.as_of
    first_event_at = state.first_event_at
    repayments, spendings, asset_updates = state.repayments, state.spendings, state.asset_updates
    on_time, late, missed = state.on_time, state.late, state.missed
    latest = dict(state.last_delinquency_at)
    delinquency = dict(state.delinquency_by_month)
    spend = dict(state.spend_by_month)
    # Loans and assets are copied on their first change: a state no event changed them in
    # keeps its parent's mappings, and what is derived from them alone stays cached.
    loans: Mapping[str, LoanSnapshot] = state.loans
    assets: Mapping[str, AssetSnapshot] = state.assets
    own_loans: dict[str, LoanSnapshot] | None = None
    own_assets: dict[str, AssetSnapshot] | None = None
    kept_from = month_index(as_of) - MONTHS_KEPT + 1
    folded = False
    for event in remaining:
        if event.user_id != user_id:
            raise ValueError("event belongs to another user")
        folded = True
        occurred = event.occurred_at
        if occurred > as_of:  # advance: decay to the newer time, prune old months
            factor = decay_factor(occurred - as_of)
            as_of = occurred
            kept_from = month_index(as_of) - MONTHS_KEPT + 1
            on_time, late, missed = on_time * factor, late * factor, missed * factor
            delinquency = {m: d for m, d in delinquency.items() if m >= kept_from}
            spend = {m: v for m, v in spend.items() if m >= kept_from}
        if occurred < first_event_at:
            first_event_at = occurred
        if isinstance(event, RepaymentEvent):
            repayments += 1
            weight = decay_factor(as_of - occurred)
            on_time, late, missed = _counted(event, weight, on_time, late, missed)
            days = event.days_past_due
            if days > 0 and month_index(occurred) >= kept_from:
                month = month_index(occurred)
                if days > delinquency.get(month, 0):
                    delinquency[month] = days
            for level in DELINQUENCY_LEVELS:
                if days >= level and occurred > latest.get(level, _NEVER):
                    latest[level] = occurred
            if _newer(occurred, event.event_id, loans.get(event.loan_id)):
                if own_loans is None:
                    loans = own_loans = dict(loans)
                own_loans[event.loan_id] = LoanSnapshot(
                    occurred, event.event_id, event.outstanding_balance
                )
        elif isinstance(event, SpendingEvent):
            spendings += 1
            month = month_index(occurred)
            if month >= kept_from:
                spend[month] = spend.get(month, Decimal(0)) + event.amount
        else:
            asset_updates += 1
            key = event.asset_type.value
            if _newer(occurred, event.event_id, assets.get(key)):
                if own_assets is None:
                    assets = own_assets = dict(assets)
                own_assets[key] = AssetSnapshot(
                    occurred, event.event_id, event.value, event.verified
                )
    if not folded:
        return state
    return UserState(
        user_id=user_id,
        as_of=as_of,
        first_event_at=first_event_at,
        repayments=repayments,
        spendings=spendings,
        asset_updates=asset_updates,
        on_time=on_time,
        late=late,
        missed=missed,
        last_delinquency_at=latest,
        delinquency_by_month=delinquency,
        spend_by_month=spend,
        loans=loans,
        assets=assets,
    )


def without_paid_loans(state: UserState) -> UserState:
    """The state without loans whose latest balance is zero (closed and paid): they add
    nothing to the debt, and keeping them would let a user's state grow with every loan
    ever taken. Only for a state folded in event-time order — there no older snapshot of
    such a loan can come later (one that arrives late is folded again with every event)."""
    if all(loan.balance for loan in state.loans.values()):
        return state
    open_loans = {k: v for k, v in state.loans.items() if v.balance}
    return replace(state, loans=open_loans)


def reference_fold(events: Iterable[InputEvent]) -> dict[str, UserState]:
    """The correct final state of every user for a set of events, whatever their order.

    Duplicates by ``event_id`` (per user) count once, exactly as the worker deduplicates.
    """
    seen: set[tuple[str, str]] = set()
    states: dict[str, UserState] = {}
    for event in events:
        identity = (event.user_id, event.event_id)
        if identity in seen:
            continue
        seen.add(identity)
        states[event.user_id] = apply_event(states.get(event.user_id), event)
    return states
