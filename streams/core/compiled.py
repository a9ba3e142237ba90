"""The status machine's review loop, compiled (``native/``, Rust with PyO3), behind one call.

Between two of a user's events the folded state does not change, yet the machine reviews it
at every month start, crossing day, dwell end and thaw: nine reviews per event in a shuffled
backfill, most of the fold's time. :func:`run` hands such a stretch to the compiled loop.
The Python core (:func:`streams.core.scoring.review_step`,
:func:`streams.core.timeline.next_time_review`) stays the reference: the compiled loop does
the same arithmetic in the same order, and ``tests/unit/test_compiled_core.py`` holds every
answer equal. Where it cannot be exact (money not in whole cents, a policy whose segment
names repeat, an instant Python's datetime cannot hold) it declines and Python steps.

Used when the extension is installed (``make install`` builds it) and not switched off
(:func:`use_compiled`; the worker's setting ``compiled_core``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, get_args

from schemas.models import EffectiveStatus
from streams.core.features import state_values
from streams.core.instants import duration_micros, from_micros, to_micros
from streams.core.policy import FeatureName, Policy, Rule
from streams.core.scorecard import ScorecardDocument
from streams.core.scoring import STANDARD_SEGMENT, LineStatus
from streams.core.state import UserState

if TYPE_CHECKING:
    from creditline_native import Rules, StateArgs

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
_RULES: dict[tuple[int, int], tuple[Policy, ScorecardDocument, Rules | None]] = {}


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
    characteristics: list[
        tuple[int, list[float] | None, list[tuple[float, int]] | None, list[int], int]
    ] = []
    for feature, lookup, points, missing in card.scoring_rows:
        if isinstance(lookup, dict):
            characteristics.append(
                (_INDEX[feature], None, list(lookup.items()), list(points), missing)
            )
        else:
            characteristics.append((_INDEX[feature], list(lookup), None, list(points), missing))
    status = policy.status
    return _native.Rules(
        card.base_points,
        characteristics,
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


def _rules(
    policy: Policy, card: ScorecardDocument, edges: dict[str, tuple[float, ...]]
) -> Rules | None:
    # Policies and cards are immutable and few (the entry keeps both alive, so an id is
    # never reused while it is cached); ``edges`` are theirs (PolicyTimeline.edges_at).
    key = (id(policy), id(card))
    found = _RULES.get(key)
    if found is None or found[0] is not policy or found[1] is not card:
        if len(_RULES) > 256:
            _RULES.clear()
        found = _RULES[key] = (policy, card, _compile(policy, card, edges))
    return found[2]


# ---- a state, packed once -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Packed:
    state: UserState
    args: StateArgs | None


class _Last:
    """The last state packed (the loop is called for one state at a time, often twice)."""

    entry: _Packed | None = None


def _cents(amount: Decimal) -> int | None:
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value() or abs(cents) >= _CENTS_LIMIT:
        return None
    return int(cents)


def _pack(state: UserState) -> StateArgs | None:
    entry = _Last.entry
    if entry is not None and entry.state is state:
        return entry.args
    spend = []
    args: StateArgs | None = None
    for month, amount in state.spend_by_month.items():
        cents = _cents(amount)
        if cents is None:
            break
        spend.append((month, cents))
    else:
        args = (
            to_micros(state.as_of),
            to_micros(state.first_event_at),
            state.on_time,
            state.late,
            state.missed,
            [(level, to_micros(at)) for level, at in state.last_delinquency_at.items()],
            state_values(state),
            list(state.delinquency_by_month.items()),
            spend,
        )
    _Last.entry = _Packed(state, args)
    return args


# ---- the loop -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ran:
    """What a compiled run did: the status changes, the last instant reviewed and the next
    time-driven review instant after it."""

    changes: tuple[LineStatus, ...]
    reviewed_at: datetime
    next_review: datetime


def run(
    state: UserState,
    line: LineStatus | None,
    moment: datetime,
    stops: Sequence[datetime | None],
    until: datetime,
    horizon: timedelta,
    policy: Policy,
    card: ScorecardDocument,
    edges: dict[str, tuple[float, ...]],
) -> Ran | None:
    """Review ``state`` at ``moment`` and at every time-driven review instant after it
    before the earliest of ``stops`` (the next event, policy change) and the instant the
    oldest event leaves the window (there the fold is redone), and not
    after ``until``, under ``policy`` and ``card`` (whose merged edges are ``edges``).
    None: not compiled, or not exactly computable there (the caller steps in Python)."""
    if not active():
        return None
    rules = _rules(policy, card, edges)
    args = _pack(state)
    if rules is None or args is None:
        return None
    window_edge = to_micros(state.first_event_at) + duration_micros(horizon)
    stop = min((to_micros(s) for s in stops if s is not None), default=window_edge)
    packed_line = (
        None if line is None else (_STATUS_CODE[line.status], to_micros(line.since), line.settled)
    )
    ran = rules.run(
        args,
        packed_line,
        to_micros(moment),
        min(stop, window_edge),
        to_micros(until),
        duration_micros(horizon),
    )
    if ran is None:
        return None
    changes, reviewed_at, next_review = ran
    return Ran(
        tuple(
            LineStatus(_STATUS[status], from_micros(since), settled)
            for status, since, settled in changes
        ),
        from_micros(reviewed_at),
        from_micros(next_review),
    )
