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

from schemas.models import AssetEvent, InputEvent, RepaymentEvent, SpendingEvent

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


def _advance(state: UserState, moment: datetime) -> UserState:
    """Move ``as_of`` forward to ``moment``: decay counters and prune old buckets."""
    if moment <= state.as_of:
        return state
    factor = decay_factor(moment - state.as_of)
    oldest = month_index(moment) - MONTHS_KEPT + 1
    return replace(
        state,
        as_of=moment,
        on_time=state.on_time * factor,
        late=state.late * factor,
        missed=state.missed * factor,
        delinquency_by_month={m: d for m, d in state.delinquency_by_month.items() if m >= oldest},
        spend_by_month={m: s for m, s in state.spend_by_month.items() if m >= oldest},
    )


def _in_kept_months(state: UserState, moment: datetime) -> bool:
    return month_index(moment) >= month_index(state.as_of) - MONTHS_KEPT + 1


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


def _apply_repayment(state: UserState, event: RepaymentEvent) -> UserState:
    weight = decay_factor(state.as_of - event.occurred_at)
    on_time, late, missed = _counted(event, weight, state.on_time, state.late, state.missed)
    delinquency = state.delinquency_by_month
    if event.days_past_due > 0 and _in_kept_months(state, event.occurred_at):
        month = month_index(event.occurred_at)
        if event.days_past_due > delinquency.get(month, 0):
            delinquency = {**delinquency, month: event.days_past_due}
    latest = state.last_delinquency_at
    for level in DELINQUENCY_LEVELS:
        if event.days_past_due >= level and event.occurred_at > latest.get(level, _NEVER):
            latest = {**latest, level: event.occurred_at}
    loans = state.loans
    if _newer(event.occurred_at, event.event_id, loans.get(event.loan_id)):
        snapshot = LoanSnapshot(event.occurred_at, event.event_id, event.outstanding_balance)
        loans = {**loans, event.loan_id: snapshot}
    return replace(
        state,
        repayments=state.repayments + 1,
        on_time=on_time,
        late=late,
        missed=missed,
        last_delinquency_at=latest,
        delinquency_by_month=delinquency,
        loans=loans,
    )


def _apply_spending(state: UserState, event: SpendingEvent) -> UserState:
    spend = state.spend_by_month
    if _in_kept_months(state, event.occurred_at):
        month = month_index(event.occurred_at)
        spend = {**spend, month: spend.get(month, Decimal(0)) + event.amount}
    return replace(state, spendings=state.spendings + 1, spend_by_month=spend)


def _apply_asset(state: UserState, event: AssetEvent) -> UserState:
    assets = state.assets
    key = event.asset_type.value
    if _newer(event.occurred_at, event.event_id, assets.get(key)):
        snapshot = AssetSnapshot(event.occurred_at, event.event_id, event.value, event.verified)
        assets = {**assets, key: snapshot}
    return replace(state, asset_updates=state.asset_updates + 1, assets=assets)


def apply_event(state: UserState | None, event: InputEvent) -> UserState:
    """Fold one (not yet applied) event into a user's state and return the new state."""
    if state is None:
        state = UserState(
            user_id=event.user_id, as_of=event.occurred_at, first_event_at=event.occurred_at
        )
    elif event.user_id != state.user_id:
        raise ValueError("event belongs to another user")
    state = _advance(state, event.occurred_at)
    if event.occurred_at < state.first_event_at:
        state = replace(state, first_event_at=event.occurred_at)
    if isinstance(event, RepaymentEvent):
        return _apply_repayment(state, event)
    if isinstance(event, SpendingEvent):
        return _apply_spending(state, event)
    return _apply_asset(state, event)


def fold_events(state: UserState | None, events: Iterable[InputEvent]) -> UserState | None:
    """Fold events (already deduplicated) into ``state``, in the order given.

    Equal to :func:`apply_event` event by event (the same float operations in the same
    order, the same dict contents and key order), but in one pass over local accumulators
    with a single frozen state built at the end.
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
    loans = dict(state.loans)
    assets = dict(state.assets)
    kept_from = month_index(as_of) - MONTHS_KEPT + 1
    folded = False
    for event in remaining:
        if event.user_id != user_id:
            raise ValueError("event belongs to another user")
        folded = True
        occurred = event.occurred_at
        if occurred > as_of:  # _advance
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
                loans[event.loan_id] = LoanSnapshot(
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
                assets[key] = AssetSnapshot(occurred, event.event_id, event.value, event.verified)
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
