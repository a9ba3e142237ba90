"""The status machine, compiled (``native/``, Rust with PyO3), behind one call.

A late event restates a user's history: every event instant after it is folded again and
the state reviewed there and at every month start, crossing day, dwell end and thaw up to
the next (a dozen reviews per event in a shuffled backfill). :func:`advance_appending` hands
the whole run to the compiled machine, which folds and reviews with plain numbers (cents,
integer microseconds), takes the start's fold and returns the last one as Redis stores
them (:mod:`streams.core.codec`'s bytes, read and written there: no Python state in
between).
The Python core (:func:`streams.core.timeline.advance`'s stepping,
:func:`streams.core.state.fold_events`, :func:`streams.core.scoring.review_step`) stays
the reference: the compiled machine does the same arithmetic in the same order (``0.5 ** x``
with the C library's ``pow``, debt to income as a 28-digit decimal quotient), and
``tests/unit/test_compiled_core.py`` holds every answer and stored byte equal. Where it
cannot be exact (money not in whole cents, a policy whose segment names repeat, an instant
Python's datetime cannot hold) it declines and Python steps.

Used when the extension is installed (``make install`` builds it) and not switched off
(:func:`use_compiled`; the worker's setting ``compiled_core``).

Longer than most modules: the packing (events, stored ledgers, policies and folds into
plain data) sits beside the one call.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any, get_args

from schemas.models import EffectiveStatus, InputEvent, RepaymentEvent, SpendingEvent
from streams.core.instants import duration_micros, from_micros, to_micros
from streams.core.policy import FeatureName, Policy, Rule
from streams.core.scorecard import ScorecardDocument
from streams.core.scoring import STANDARD_SEGMENT, LineStatus
from streams.core.state import UserState
from streams.core.trajectory import STATUS_CODE as STORED_STATUS_CODE
from streams.core.trajectory import change_record

if TYPE_CHECKING:
    from creditline_native import EventArgs, FoldArgs, Line, Rules, Stated

    #: What the compiled machine answers: its new changes, the last review instant, the
    #: next, the fold as stored, and the last review's score, feature values and what its
    #: status-change event states.
    Ran = tuple[
        list[Line],
        int | None,
        int | None,
        bytes | None,
        tuple[int, list[float | None], Stated] | None,
    ]

    from streams.core.timeline import PolicyTimeline

try:
    import creditline_native as _native
except ImportError:  # not built: the Python core answers alone
    _native = None  # type: ignore[assignment]

#: The features in the order of :meth:`streams.core.features.Features.values`, which is the
#: order policies name them in: the compiled loop knows them by index (a unit test checks).
FEATURE_ORDER: tuple[str, ...] = get_args(FeatureName)
_INDEX = {name: i for i, name in enumerate(FEATURE_ORDER)}
_STATUS_CODE = {EffectiveStatus.OPEN: 0, EffectiveStatus.CLOSED: 1, EffectiveStatus.FROZEN: 2}
_STATUS = {code: status for status, code in _STATUS_CODE.items()}
#: Spending per month beyond this many cents is left to Python (24 months of it stay exact
#: in a float and in 64-bit sums).
_CENTS_LIMIT = 2**48
_DECAYED = ("on_time_repayments", "late_repayments", "missed_repayments")


class _Switch:
    on = True


def available() -> bool:
    """Whether the compiled loop is installed."""
    return _native is not None


def use_compiled(on: bool) -> None:
    """Switch the compiled loop on (when installed) or off (the Python core alone)."""
    _Switch.on = on


def active() -> bool:
    """Whether :func:`run` uses the compiled loop."""
    return _Switch.on and _native is not None


# ---- a policy and a card, compiled once ---------------------------------------------------
_COMPILED: dict[tuple[int, ...], tuple[tuple[object, ...], Rules | None]] = {}


def _compiled_once(sources: tuple[object, ...], make: Callable[[], Rules | None]) -> Rules | None:
    """``make()``, once per set of ``sources``: policies and cards are immutable and few (the
    entry keeps them alive, so an id is never reused while it is cached)."""
    key = tuple(id(source) for source in sources)
    found = _COMPILED.get(key)
    if found is None or any(a is not b for a, b in zip(found[0], sources, strict=True)):
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        found = _COMPILED[key] = (sources, make())
    return found[1]


Condition = tuple[int, float | None, float | None]


def _rule_args(rule: Rule) -> tuple[list[Condition], list[Condition]]:
    def args(conditions: Sequence[Any]) -> list[Condition]:
        return [(_INDEX[c.feature], c.at_least, c.below) for c in conditions]

    return args(rule.all), args(rule.any)


def _compile(
    policy: Policy, card: ScorecardDocument, edges: dict[str, tuple[float, ...]]
) -> Rules | None:
    """The native rules of a policy and a card, or None where they cannot be compiled
    exactly (segment names that repeat or shadow ``standard``)."""
    assert _native is not None
    names = [s.name for s in policy.segments]
    if len(set(names)) != len(names) or STANDARD_SEGMENT in names:
        return None
    index_of = {name: i for i, name in enumerate(names)}
    index_of[STANDARD_SEGMENT] = len(names)
    status = policy.status
    return _native.Rules(
        card.base_points,
        _characteristics(card),
        [
            (_rule_args(s.when), s.thresholds.close_below, s.thresholds.reopen_at)
            for s in policy.segments
        ],
        (status.thresholds.close_below, status.thresholds.reopen_at),
        [
            (
                [index_of[name] for name in e.segments if name in index_of],
                _rule_args(e.when),
                e.thresholds.close_below,
                e.thresholds.reopen_at,
            )
            for e in policy.exceptions
        ],
        duration_micros(status.min_dwell),
        (status.freeze.days_past_due_at_least, duration_micros(status.freeze.window)),
        (
            list(edges.get(_DECAYED[0], ())),
            list(edges.get(_DECAYED[1], ())),
            list(edges.get(_DECAYED[2], ())),
        ),
        list(edges.get("history_months", ())),
    )


def _characteristics(
    card: ScorecardDocument,
) -> list[tuple[int, list[float] | None, list[tuple[float, int]] | None, list[int], int]]:
    """The card's characteristics as the native rules take them."""
    return [
        (_INDEX[feature], None, list(lookup.items()), list(points), missing)
        if isinstance(lookup, dict)
        else (_INDEX[feature], list(lookup), None, list(points), missing)
        for feature, lookup, points, missing in card.scoring_rows
    ]


def _rules(
    policy: Policy, card: ScorecardDocument, edges: dict[str, tuple[float, ...]]
) -> Rules | None:
    # ``edges`` are the policy's and card's own (PolicyTimeline.edges_at): not part of the key.
    return _compiled_once((policy, card), lambda: _compile(policy, card, edges))


# ---- months of good behaviour, scored ----------------------------------------------------
def _card_rules(card: ScorecardDocument) -> Rules:
    """The card alone, compiled: the simulated months are scored, never reviewed."""
    assert _native is not None
    native = _native

    def make() -> Rules:
        # No segments, exceptions, dwell, freeze or edges: nothing is reviewed.
        return native.Rules(
            card.base_points, _characteristics(card), [], (0, 0), [], 0, (0, 0), ([], [], []), []
        )

    rules = _compiled_once((card,), make)
    assert rules is not None
    return rules


def good_month_bins(
    card: ScorecardDocument, state: UserState, ends: Sequence[int]
) -> list[list[int | None]] | None:
    """Every characteristic's bin after each month of good behaviour
    (:func:`streams.core.good_behaviour.future_values`, month k ending at the k-th of
    ``ends``, in :func:`to_micros`), scored by ``card``; None when not compiled or not exact
    here (Python simulates)."""
    if not active():
        return None
    packed = _pack_fold(state)
    if packed is None:
        return None
    return _native.good_months(_card_rules(card), packed, list(ends))


# ---- the whole machine of one user --------------------------------------------------------
#: Stage 0 of a policy timeline holds from the beginning of time.
_ALWAYS = -(2**63)
_REPAYMENT, _SPENDING, _ASSET = 0, 1, 2
_COUNTS_AS_NONE, _ON_TIME, _LATE, _MISSED = 0, 1, 2, 3
#: Spending amounts with exponents outside this range are left to Python (the sums are
#: rebuilt from cents and an exponent).
_EXPONENTS = range(-6, 3)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _LastStages:
    """The last policy timeline compiled (a batch folds all its users under one)."""

    entry: tuple[PolicyTimeline, list[tuple[int, Rules]] | None] | None = None


def _stages(timelines: PolicyTimeline) -> list[tuple[int, Rules]] | None:
    """The rules in effect from each instant a policy or card takes effect (the first from
    the beginning of time), or None where one cannot be compiled."""
    entry = _LastStages.entry
    if entry is None or entry[0] is not timelines:
        entry = _LastStages.entry = (timelines, _compile_stages(timelines))
    return entry[1]


def _compile_stages(timelines: PolicyTimeline) -> list[tuple[int, Rules]] | None:
    changes = timelines.effective_instants()
    try:  # what holds before the first change (an instant before it names it)
        before = (changes[0] if changes else _EPOCH) - timedelta(microseconds=1)
    except OverflowError:
        return None  # a change at the beginning of time
    stages = []
    for micros, moment in [(_ALWAYS, before), *((to_micros(c), c) for c in changes)]:
        policy, card = timelines.at(moment), timelines.card_at(moment)
        rules = _rules(policy, card, timelines.edges_at(moment))
        if rules is None:
            return None
        stages.append((micros, rules))
    return stages


def _cents(amount: Decimal) -> int | None:
    """Whole cents, or None (not whole cents, or too large to stay exact)."""
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value() or abs(cents) >= _CENTS_LIMIT:
        return None
    return int(cents)


def _kept(amount: Decimal) -> tuple[int, int] | None:
    """A kept snapshot's money as the compiled side stores it again: whole cents and the
    exponent as given; None for a negative zero (one in cents) or not exact."""
    exponent = amount.as_tuple().exponent
    cents = _cents(amount)
    if cents is None or not isinstance(exponent, int) or (not cents and amount.is_signed()):
        return None
    return cents, exponent


def pack_event(event: InputEvent) -> EventArgs | None:
    """An event as the compiled machine takes it; None when it cannot be exact there."""
    occurred = to_micros(event.occurred_at)
    if isinstance(event, RepaymentEvent):
        balance = _kept(event.outstanding_balance)
        if balance is None:
            return None
        due, paid, days = event.amount_due, event.amount_paid, event.days_past_due
        counted = _COUNTS_AS_NONE
        if due > 0 or paid > 0:
            counted = _MISSED if paid < due else _ON_TIME if days == 0 else _LATE
        return (
            occurred,
            _REPAYMENT,
            event.event_id,
            event.loan_id,
            *balance,
            counted,
            days,
            False,
        )
    if isinstance(event, SpendingEvent):
        amount = _cents(event.amount)
        exponent = event.amount.as_tuple().exponent
        if amount is None or not isinstance(exponent, int) or exponent not in _EXPONENTS:
            return None
        return (occurred, _SPENDING, event.event_id, "", amount, exponent, 0, 0, False)
    value = _kept(event.value)
    if value is None:
        return None
    kind = event.asset_type.value
    return (occurred, _ASSET, event.event_id, kind, *value, 0, 0, event.verified)


def pack_ledger(blob: bytes) -> tuple[list[EventArgs], list[int], list[int]] | None:
    """A stored ledger's entries packed as :func:`pack_event` packs their events (stored
    order), their content digests and end offsets: read by the compiled side, without a
    Python event per entry. None when not compiled or not exactly packable."""
    if not active():
        return None
    return _native.pack_ledger(blob)


def _pack_fold(state: UserState) -> FoldArgs | None:
    spend = []
    for month, amount in state.spend_by_month.items():
        cents, exponent = _cents(amount), amount.as_tuple().exponent
        if cents is None or not isinstance(exponent, int) or exponent not in _EXPONENTS:
            return None
        spend.append((month, cents, exponent))
    loans = []
    for loan_id, loan in state.loans.items():
        cents = _cents(loan.balance)
        if cents is None:
            return None
        loans.append((loan_id, to_micros(loan.occurred_at), loan.event_id, cents, False))
    assets = []
    for kind, asset in state.assets.items():
        cents = _cents(asset.value)
        if cents is None:
            return None
        assets.append((kind, to_micros(asset.occurred_at), asset.event_id, cents, asset.verified))
    return (
        to_micros(state.as_of),
        to_micros(state.first_event_at),
        (state.repayments, state.spendings, state.asset_updates),
        (state.on_time, state.late, state.missed),
        [(level, to_micros(at)) for level, at in state.last_delinquency_at.items()],
        list(state.delinquency_by_month.items()),
        spend,
        loans,
        assets,
    )


def stored_loan_ids(stored: bytes) -> list[str] | None:
    """The loan ids of a fold as stored, read by the compiled side; None when it is off or
    cannot read them (Python decodes the fold)."""
    if not active():
        return None
    return _native.stored_loan_ids(stored)


def resume_point(
    records: bytes, first: int, moment: int, horizon_us: int
) -> tuple[int, int] | None:
    """Where a visit whose earliest fresh event is at ``moment`` resumes a reviewed
    trajectory stored as ``records``, the user's first event at ``first`` (microseconds):
    :func:`streams.core.timeline._resume_point_by`'s cut, as (how many changes are kept, the
    review instant resumed at), or ``(0, 0)`` for the start. None: not compiled, or Python
    must answer (it would raise)."""
    if not active():
        return None
    return _native.resume_point(records, first, moment, horizon_us)


def pack_events(events: Sequence[InputEvent], user_id: str) -> list[EventArgs] | None:
    """``user_id``'s events packed (:func:`pack_event`); None when the machine is off or
    one of them is not exactly computable or another user's (Python folds them, and raises
    for the other user's event)."""
    if not active():
        return None
    packed: list[EventArgs] = []
    for event in events:
        args = pack_event(event)
        if args is None or event.user_id != user_id:
            return None
        packed.append(args)
    return packed


@dataclass(frozen=True, slots=True)
class StatedReview:
    """What a review's status-change event states, as the compiled machine saw it: each
    characteristic's points (in the card's order), the segment (its index in the policy's
    segments; the standard segment after them) and the exception that applied (its index
    in the policy's exceptions, None when none did)."""

    points: tuple[int, ...]
    segment: int
    exception: int | None


@dataclass(frozen=True, slots=True)
class Appended:
    """Where a compiled :func:`advance_appending` left the machine: the changes it added as
    stored records (:func:`streams.core.trajectory.change_records`), never decoded; the
    last review instant, the next one, and the fold there as stored."""

    added: bytes
    reviewed_at: datetime | None
    next_review: datetime | None
    stored: bytes | None
    score: int | None  # at the last review instant, when this run reviewed there
    #: The feature values that score rests on, in :data:`FEATURE_ORDER` (None with it).
    values: tuple[float | None, ...] | None = None
    #: What that review's status-change event states (None with the score).
    stated: StatedReview | None = None


def advance_appending(
    packed: list[EventArgs],
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    line: LineStatus | None,
    reviewed_at: datetime | None,
    stored: bytes | None,
    window: tuple[int, int] | None = None,
) -> Appended | None:
    """:func:`streams.core.timeline.advance` (without a trace) of one user's events, packed
    already (:func:`pack_events`, :func:`pack_ledger`) in canonical order, from a
    trajectory's last status (``line``) and last review instant, with the fold there given
    as ``stored`` (:func:`streams.core.codec.encode_state`'s bytes) or, when ``window`` is
    given, as the fold of ``packed[lo:hi]``. The new changes are answered as stored
    records: a visit neither reads nor rebuilds the user's earlier history. None: not
    compiled, or not exactly computable there (the caller runs Python)."""
    if not active():
        return None
    stages = _stages(timelines)
    if stages is None:
        return None
    index = 0
    if reviewed_at is not None:
        index = bisect.bisect_right(packed, to_micros(reviewed_at), key=itemgetter(0))
    ran: Ran | None = _native.advance(
        stages,
        packed,
        index,
        (
            None
            if line is None
            else (_STATUS_CODE[line.status], to_micros(line.since), line.settled),
            None if reviewed_at is None else to_micros(reviewed_at),
            stored,
            window,
        ),
        to_micros(until),
        duration_micros(horizon),
    )
    if ran is None:
        return None
    new, reviewed, upcoming, out, last_review = ran
    score, values, stated = last_review if last_review is not None else (None, None, None)
    return Appended(
        b"".join(
            [
                change_record(STORED_STATUS_CODE[_STATUS[status]], since, settled)
                for status, since, settled in new
            ]
        )
        if new
        else b"",
        None if reviewed is None else from_micros(reviewed),
        None if upcoming is None else from_micros(upcoming),
        out,
        score,
        None if values is None else tuple(values),
        None if stated is None else StatedReview(tuple(stated[0]), stated[1], stated[2]),
    )
