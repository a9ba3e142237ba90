"""The line status as a pure function of event time: a status machine run over review instants.

Hysteresis and dwell make a line's status depend on its path, not only on the latest score.
To make that path the same whatever the arrival order, batching, crashes or replays, the
machine is defined on **event time only**. It is stepped (``assess(..., with_promotions=
False)``, one step of hysteresis, dwell and freezing) at the user's **review instants**:

* every instant at which one of the user's events occurred (all events of that instant are
  folded first) — so every event counts at once, and a late repayment freezes at once;
* the exact instant a freeze runs out (``freeze_ends_at``);
* the instant a policy or scorecard version takes effect (:class:`PolicyTimeline`);
* the start of every calendar month (UTC), where the monthly features move;
* the daily review (00:00 UTC) at or after any instant where time alone changes an input of
  the step: a decayed counter or the history length crossing a bin or rule edge, the dwell
  time since the last change running out, an event leaving the horizon window.

Between two review instants nothing the step reads can change, so the status is constant;
``status(T)`` is the machine's state after every review instant ≤ T. Events are folded in
canonical order ``(occurred_at, event_id)`` over the window ``(t - horizon, t]``, so the
floating-point counters are bit-for-bit the same however the events arrived.

Everything here is pure: the worker, the sweep of due reviews, ``replay``, ``inspect`` and
``explain`` all call :func:`advance`.

Longer than most modules: the status machine, its review instants and the ways to resume
it are one algorithm, best read together.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING

from schemas.models import EffectiveStatus, InputEvent
from streams.core import compiled
from streams.core.features import derive_features
from streams.core.instants import duration_micros, from_micros, to_micros
from streams.core.ledger import StoredLedger
from streams.core.policy import Policy
from streams.core.scorecard import ScorecardDocument, ScorecardTimeline, merged_edges
from streams.core.scoring import (
    Assessment,
    LineStatus,
    assess,
    default_scorecard,
    freeze_ends_at,
    review_step,
)
from streams.core.state import (
    REPAYMENT_HALF_LIFE,
    UserState,
    decay_factor,
    fold_events,
    without_paid_loans,
)
from streams.core.trajectory import EMPTY, Trajectory, record_intervals

if TYPE_CHECKING:
    from creditline_native import EventArgs

DAY = timedelta(days=1)
#: How far before an estimated crossing the daily review may fall: floating-point estimates
#: of a crossing instant are off by nanoseconds; a review one day early is harmless, a skipped
#: review day would not be.
_MARGIN = timedelta(milliseconds=1)
_MONTH_DAYS = 30.4375
_HALF_LIFE_SECONDS = REPAYMENT_HALF_LIFE.total_seconds()
#: Features that move with time alone, and how to read their value from a state.
_DECAYED = {
    "on_time_repayments": "on_time",
    "late_repayments": "late",
    "missed_repayments": "missed",
}


def sort_key(event: InputEvent) -> tuple[datetime, str]:
    """The canonical order of a user's events."""
    return (event.occurred_at, event.event_id)


def canonical(events: Sequence[InputEvent]) -> list[InputEvent]:
    """Events in canonical order (``occurred_at``, then ``event_id``)."""
    return sorted(events, key=sort_key)


# ---- calendar --------------------------------------------------------------------------------
def day_start(moment: datetime) -> datetime:
    """00:00 UTC of the day of ``moment``."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def next_day_start(moment: datetime) -> datetime:
    """The first 00:00 UTC strictly after ``moment``."""
    return day_start(moment) + DAY


def daily_review_at_or_after(moment: datetime) -> datetime:
    """The first 00:00 UTC at or after ``moment``."""
    start = day_start(moment)
    return start if start == moment else start + DAY


def next_month_start(moment: datetime) -> datetime:
    """00:00 UTC on the first day of the month after ``moment``'s month."""
    utc = moment.astimezone(UTC)
    year, month = (utc.year + 1, 1) if utc.month == 12 else (utc.year, utc.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_start(moment: datetime) -> datetime:
    """00:00 UTC on the first day of ``moment``'s month."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


# ---- policies and scorecards over time ------------------------------------------------------
Edges = dict[str, tuple[float, ...]]


def _default_cards() -> ScorecardTimeline:
    return ScorecardTimeline(default_scorecard())


@dataclass(frozen=True, slots=True)
class PolicyTimeline:
    """Policy versions and scorecard versions with the instants they take effect: what
    decides at any instant. ``base`` holds before the first policy version; ``cards`` says
    which scorecard scores (the shipped card when none was published)."""

    base: Policy
    #: (effective from, policy), in ascending order of the instant.
    versions: tuple[tuple[datetime, Policy], ...] = ()
    cards: ScorecardTimeline = field(default_factory=_default_cards)
    _instants: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    _changes: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        instants = tuple(v[0] for v in self.versions)
        object.__setattr__(self, "_instants", instants)
        changes = tuple(sorted({*instants, *self.cards.effective_instants()}))
        object.__setattr__(self, "_changes", changes)

    @classmethod
    def of(
        cls,
        base: Policy,
        versions: Sequence[tuple[datetime, Policy]],
        cards: ScorecardTimeline | None = None,
    ) -> PolicyTimeline:
        """A timeline from versions in any order (a stable sort keeps publication order for
        versions taking effect at the same instant: the later published wins)."""
        ordered = tuple(sorted(versions, key=lambda v: v[0]))
        return cls(base, ordered, cards) if cards is not None else cls(base, ordered)

    def with_cards(self, cards: ScorecardTimeline) -> PolicyTimeline:
        """The same policy versions with another scorecard history."""
        return PolicyTimeline(self.base, self.versions, cards)

    def at(self, moment: datetime) -> Policy:
        """The policy in effect at ``moment``."""
        index = bisect.bisect_right(self._instants, moment)
        return self.versions[index - 1][1] if index else self.base

    def card_at(self, moment: datetime) -> ScorecardDocument:
        """The scorecard in effect at ``moment``."""
        return self.cards.at(moment)

    def edges_at(self, moment: datetime) -> Edges:
        """The feature values where time alone can change an answer at ``moment``: the
        bin edges of the card and the rule bounds of the policy in effect."""
        return _edges(self.at(moment), self.card_at(moment))

    def next_change_after(self, moment: datetime) -> datetime | None:
        """The first instant after ``moment`` at which another policy or card takes effect."""
        index = bisect.bisect_right(self._changes, moment)
        return self._changes[index] if index < len(self._changes) else None

    @property
    def latest(self) -> Policy:
        """The version with the latest effective instant (the base when there is none)."""
        return self.versions[-1][1] if self.versions else self.base

    def effective_instants(self) -> tuple[datetime, ...]:
        """Every instant a policy or scorecard version takes effect, ascending."""
        return self._changes


_EDGES: dict[tuple[int, int], tuple[Policy, ScorecardDocument, Edges]] = {}


def _edges(policy: Policy, card: ScorecardDocument) -> Edges:
    # Policies and cards are immutable and few: their merged edges are computed once (the
    # entry keeps both alive, so an id is never reused while it is cached).
    key = (id(policy), id(card))
    found = _EDGES.get(key)
    if found is None or found[0] is not policy or found[1] is not card:
        if len(_EDGES) > 256:
            _EDGES.clear()
        found = _EDGES[key] = (
            policy,
            card,
            merged_edges(policy.feature_edges, card.feature_edges),
        )
    return found[2]


def constant(policy: Policy, card: ScorecardDocument | None = None) -> PolicyTimeline:
    """A timeline with one policy (and one card: the shipped one by default) for all time
    (tests, docs, what-if of one version)."""
    if card is None:
        return PolicyTimeline(policy)
    return PolicyTimeline(policy, cards=ScorecardTimeline(card))


# ---- the trajectory --------------------------------------------------------------------------
def new_change_intervals(
    known: tuple[LineStatus, ...], changes: tuple[LineStatus, ...]
) -> list[float]:
    """Seconds of event time between each of ``changes`` not in ``known`` and the change
    before it (changes into or out of a freeze, and provisional first statuses, aside:
    freezing is immediate by design)."""
    if changes == known:  # most visits: no change (a tuple compares by identity first)
        return []
    # Changes appended to the known ones (the common case): only the pairs ending in one.
    start = max(len(known) - 1, 0) if changes[: len(known)] == known else 0
    seen = set(known)
    frozen = EffectiveStatus.FROZEN
    return [
        (after.since - before.since).total_seconds()
        for before, after in itertools.pairwise(changes[start:])
        if after not in seen and frozen not in (before.status, after.status) and after.settled
    ]


def change_intervals(known: Trajectory, new: Trajectory) -> list[float]:
    """:func:`new_change_intervals` of two trajectories, read from their stored records
    (:func:`streams.core.trajectory.record_intervals`): no change is decoded."""
    return record_intervals(known.records(), new.records())


class Checkpoint:
    """A point the machine can resume from: a review instant, the fold of the events in the
    window at that instant, and the trajectory up to it.

    The fold is held as a :class:`UserState`, as its stored bytes
    (:func:`streams.core.codec.encode_state`), or both, each made from the other only when
    first read: the worker hands the compiled machine the bytes Redis gave and stores the
    bytes it answers, and builds the Python state only where one is read (an announcement's
    assessment, a decision)."""

    __slots__ = ("_state", "_stored", "_user_id", "score", "stated", "trajectory", "values")

    def __init__(
        self,
        trajectory: Trajectory,
        state: UserState | None,
        score: int | None = None,
        values: tuple[float | None, ...] | None = None,
        stated: compiled.StatedReview | None = None,
    ) -> None:
        self.trajectory = trajectory
        self._state = state
        self._stored: bytes | None = None
        self._user_id = state.user_id if state is not None else ""
        #: The score at the review instant when the run that made this checkpoint reviewed
        #: there (what the status machine saw; not stored, so a loaded checkpoint has none).
        self.score = score
        #: The feature values that score rests on, in ``compiled.FEATURE_ORDER``, when the
        #: compiled machine made this checkpoint (None otherwise; never stored).
        self.values = values
        #: What a status-change event states of that review, as the compiled machine saw it
        #: (with ``values`` alone; never stored).
        self.stated = stated

    @classmethod
    def of_stored(
        cls,
        trajectory: Trajectory,
        user_id: str,
        stored: bytes | None,
        score: int | None = None,
        values: tuple[float | None, ...] | None = None,
        stated: compiled.StatedReview | None = None,
    ) -> Checkpoint:
        """A checkpoint whose fold is given as stored bytes (None or empty: no fold)."""
        checkpoint = cls(trajectory, None, score, values, stated)
        checkpoint._stored = stored or None
        checkpoint._user_id = user_id
        return checkpoint

    @property
    def at(self) -> datetime | None:
        """The review instant."""
        return self.trajectory.reviewed_at

    @property
    def user_id(self) -> str:
        """Whose fold this is ("" for the start, which has none)."""
        return self._user_id

    @property
    def has_state(self) -> bool:
        """Whether there is a fold (without decoding it)."""
        return self._state is not None or self._stored is not None

    @property
    def state(self) -> UserState | None:
        """The fold, decoded from its stored bytes on first read."""
        if self._state is None and self._stored is not None:
            from streams.core.codec import decode_state  # the codec imports this module

            self._state = decode_state(self._stored, self._user_id)
        return self._state

    def stored_state(self) -> bytes | None:
        """The fold as stored (encoded on first read), None without one."""
        if self._stored is None and self._state is not None:
            from streams.core.codec import encode_state  # the codec imports this module

            self._stored = encode_state(self._state)
        return self._stored

    def known_stored(self) -> bytes | None:
        """The fold's stored bytes when they are at hand (never encodes)."""
        return self._stored

    @property
    def first_event_at(self) -> datetime | None:
        """The earliest event in the fold's window (read from the bytes when stored)."""
        if self._state is None and self._stored is not None:
            from streams.core.codec import stored_first_event_at  # imports this module

            return stored_first_event_at(self._stored)
        return self._state.first_event_at if self._state is not None else None

    def loan_ids(self) -> frozenset[str]:
        """The ids of the open loans the fold keeps."""
        if self._state is None and self._stored is not None:
            ids = compiled.stored_loan_ids(self._stored)
            if ids is not None:
                return frozenset(ids)
        state = self.state
        return frozenset(state.loans) if state is not None else frozenset()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Checkpoint):
            return NotImplemented
        if self.trajectory != other.trajectory:
            return False
        if self._stored is not None and self._stored == other._stored:
            return True  # the same bytes are the same fold
        return self.state == other.state

    def __hash__(self) -> int:
        return hash(self.trajectory)  # equal checkpoints have equal trajectories

    def __repr__(self) -> str:
        return f"Checkpoint({self.trajectory!r}, {self.state!r}, score={self.score!r})"


START = Checkpoint(EMPTY, None)


def _decay_crossings(state: UserState, at: datetime, edges: Edges) -> datetime | None:
    """The earliest instant after ``at`` at which a decayed counter falls below an edge."""
    factor = decay_factor(at - state.as_of)
    earliest: datetime | None = None
    for feature, field_name in _DECAYED.items():
        stored = float(getattr(state, field_name))
        value = stored * factor  # exactly as derive_features computes it at ``at``
        # A decaying value falls below its largest edge not above it first: edges ascend,
        # so the first such edge from the top is the only one to compute.
        for edge in reversed(edges.get(feature, ())):
            if edge <= 0:
                break  # a non-positive edge is never fallen below, nor any under it
            if value < edge:
                continue  # already below
            seconds = _HALF_LIFE_SECONDS * math.log2(stored / edge)
            crossing = state.as_of + timedelta(seconds=seconds)
            if earliest is None or crossing < earliest:
                earliest = crossing
            break
    return earliest


def _history_crossings(state: UserState, at: datetime, edges: Edges) -> datetime | None:
    """The earliest instant after ``at`` at which the history length reaches an edge."""
    months = (at - state.first_event_at).total_seconds() / 86400 / _MONTH_DAYS
    for edge in edges.get("history_months", ()):
        if edge > months:
            return state.first_event_at + timedelta(days=edge * _MONTH_DAYS)
    return None


def next_time_review(
    state: UserState,
    line: LineStatus | None,
    at: datetime,
    policy: Policy,
    horizon: timedelta,
    edges: Edges | None = None,
) -> datetime:
    """The next review instant after ``at`` caused by time alone (no new event), given the
    state and status after the review at ``at`` under ``policy`` and a card whose bin
    edges, merged with the policy's rule bounds, are ``edges`` (default: the shipped card's;
    see :meth:`PolicyTimeline.edges_at`)."""
    if edges is None:
        edges = _edges(policy, default_scorecard())
    # The earliest estimate gives the earliest daily review (the mapping is monotonic).
    earliest = state.first_event_at + horizon  # the oldest event leaves the window
    for estimate in (_decay_crossings(state, at, edges), _history_crossings(state, at, edges)):
        if estimate is not None and estimate < earliest:
            earliest = estimate
    candidates = [
        next_month_start(at),
        max(next_day_start(at), daily_review_at_or_after(earliest - _MARGIN)),
    ]
    if line is not None and line.settled:
        dwell_over = line.since + policy.status.min_dwell
        if dwell_over > at:
            candidates.append(daily_review_at_or_after(dwell_over))
    thaw = freeze_ends_at(state, policy)
    if thaw is not None and thaw > at:
        candidates.append(thaw)
    return min(candidates)


def _settled(state: UserState | None) -> UserState | None:
    """A fold at a review instant as it is kept: closed and paid loans dropped (canonical
    order makes that exact: no older snapshot of such a loan can follow)."""
    return without_paid_loans(state) if state is not None else None


def _window_start(occurred: Sequence[datetime], at: datetime, horizon: timedelta, lo: int) -> int:
    """Index of the first event (of those ``occurred`` then) still in the window
    ``(at - horizon, at]``."""
    return bisect.bisect_right(occurred, at - horizon, lo)  # ``occurred`` is in order


@dataclass(frozen=True, slots=True)
class Review:
    """One step of the status machine, for explanations: when, what it saw, what it gave."""

    at: datetime
    score: int
    segment: str
    status: LineStatus
    policy_version: str
    events: int  # events folded at this instant
    scorecard_version: str = ""


def advance(
    events: Sequence[InputEvent],
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    start: Checkpoint = START,
    trace: list[Review] | None = None,
) -> Checkpoint:
    """Run the status machine from ``start`` through every review instant ≤ ``until``.

    ``events`` are the user's events in canonical order; when ``start`` has a state, they
    must include every event after ``start.at`` and, if an event could leave the window
    before ``until``, every event in the window too (the fold is then redone from them).
    Returns the checkpoint at the last review instant ≤ ``until`` (``next_review`` set);
    each review is appended to ``trace`` when one is given.
    """
    return _advance(events, timelines, until, horizon, start.trajectory, start, None, trace)


def _advance(
    events: Sequence[InputEvent],
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    trajectory: Trajectory,
    fold: Checkpoint | None,
    window: tuple[int, int] | None,
    trace: list[Review] | None = None,
) -> Checkpoint:
    """:func:`advance` from ``trajectory`` with the fold at its last review instant given as
    ``fold``'s or, with ``window``, as the fold of ``events[lo:hi]``: compiled where it can
    be (one call for the whole machine), else stepped here."""
    user_id = fold.user_id if fold is not None and fold.has_state else ""
    if not user_id and events:
        user_id = events[0].user_id
    stored = _stored_or_none(fold) if trace is None and compiled.active() else None
    if stored is not None:
        packed = compiled.pack_events(events, user_id)
        done = None
        if packed is not None:
            done = compiled.advance_appending(
                packed,
                timelines,
                until,
                horizon,
                trajectory.line,
                trajectory.reviewed_at,
                stored or None,
                window,
            )
        if done is not None:
            return _appended(trajectory, done, user_id)
    state = fold.state if fold is not None else None
    if window is not None:
        state = _settled(fold_events(None, events[window[0] : window[1]]))
    return _step(events, timelines, until, horizon, Checkpoint(trajectory, state), trace)


def _stored_or_none(fold: Checkpoint | None) -> bytes | None:
    """The fold as the compiled machine takes it: its stored bytes (``b""``: no fold), or
    None when it cannot be stored (Python runs it, and says why where it is written)."""
    if fold is None or not fold.has_state:
        return b""
    try:
        return fold.stored_state()
    except (ValueError, OverflowError):
        return None


def _step(
    events: Sequence[InputEvent],
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    start: Checkpoint,
    trace: list[Review] | None,
) -> Checkpoint:
    """The status machine, stepped review by review in Python: the reference."""
    trajectory = start.trajectory
    state = start.state
    at = trajectory.reviewed_at
    changes = list(trajectory.changes)
    line = changes[-1] if changes else None
    score: int | None = None  # at the last review instant, once reviewed here
    # Events after the start instant, and the first one still inside the window.
    occurred = [e.occurred_at for e in events]
    index = 0 if at is None else bisect.bisect_right(occurred, at)
    lo = 0
    while True:
        candidates: list[datetime] = []
        if index < len(events):
            candidates.append(events[index].occurred_at)
        if at is not None and state is not None:
            policy = timelines.at(at)
            edges = timelines.edges_at(at)
            candidates.append(next_time_review(state, line, at, policy, horizon, edges))
            change = timelines.next_change_after(at)
            if change is not None:
                candidates.append(change)
        if not candidates:
            return Checkpoint(Trajectory(tuple(changes), at, None), state, score)
        moment = min(candidates)
        if moment > until:
            return Checkpoint(Trajectory(tuple(changes), at, moment), state, score)
        batch_end = index
        while batch_end < len(events) and events[batch_end].occurred_at <= moment:
            batch_end += 1
        fresh = events[index:batch_end]
        index = batch_end
        window_lo = _window_start(occurred, moment, horizon, lo)
        if state is not None and state.first_event_at <= moment - horizon:
            # An event left the window: fold the window again, in canonical order.
            state = _settled(fold_events(None, events[window_lo:index]))
        elif fresh:
            state = _settled(fold_events(state, fresh))
        lo = window_lo
        at = moment
        score = None
        if state is None:
            continue  # nothing in the window: no status to review
        policy, card = timelines.at(moment), timelines.card_at(moment)
        step = review_step(state, moment, policy, line, card)
        score = step.score
        if line is None or step.line != line:
            changes.append(step.line)
            line = step.line
        if trace is not None:
            trace.append(
                Review(
                    moment,
                    step.score,
                    step.segment,
                    step.line,
                    policy.version,
                    len(fresh),
                    card.version,
                )
            )


def checkpoint_before(
    trajectory: Trajectory, first_event_at: datetime, moment: datetime
) -> datetime | None:
    """The latest review instant strictly before ``moment`` from which the machine can be
    resumed with nothing before it recomputed: the later of the last status change and the
    last month start (every month start after the first event is a review instant)."""
    if moment <= first_event_at:
        return None
    before = trajectory.count_before(moment)  # a bisection: a late event reads log n changes
    best = trajectory.change_at(before - 1).since if before else None
    month = month_start(moment)
    if month == moment:
        month = month_start(month - DAY)
    if month > first_event_at and (best is None or month > best):
        best = month
    return best


def _resume_point(
    occurred: Sequence[datetime],
    trajectory: Trajectory,
    moment: datetime,
    horizon: timedelta,
) -> tuple[Trajectory, int, int] | None:
    """Where :func:`resume_from` resumes: the trajectory cut there, and the window of the
    events (``occurred`` then, in canonical order) whose fold is the state there (None:
    from the start)."""
    if not occurred:
        return None
    return _resume_point_by(
        occurred[0], partial(bisect.bisect_right, occurred), trajectory, moment, horizon
    )


def _resume_point_by(
    first: datetime,
    events_until: Callable[[datetime], int],
    trajectory: Trajectory,
    moment: datetime,
    horizon: timedelta,
) -> tuple[Trajectory, int, int] | None:
    """:func:`_resume_point` of events whose first instant is ``first``, with
    ``events_until(t)`` the number of them at or before ``t`` (however they are kept)."""
    if trajectory.reviewed_at is None or not trajectory.change_count:
        return None
    first_change = trajectory.change_at(0).since
    at = checkpoint_before(trajectory, min(first, first_change), moment)
    if at is None or at < first_change:
        return None
    # The changes up to there, cut without decoding the history (changes are in time order).
    kept = trajectory.prefix(trajectory.count_before(at, inclusive=True), at, None)
    return kept, events_until(at - horizon), events_until(at)


def resume_from(
    events: Sequence[InputEvent],
    trajectory: Trajectory,
    moment: datetime,
    horizon: timedelta,
) -> Checkpoint:
    """The checkpoint to recompute from when events at or after ``moment`` changed: the
    trajectory cut at the latest review instant before ``moment``, with the fold of the
    window there (``events`` in canonical order, including the new ones)."""
    point = _resume_point([e.occurred_at for e in events], trajectory, moment, horizon)
    if point is None:
        return START
    kept, lo, hi = point
    return Checkpoint(kept, _settled(fold_events(None, events[lo:hi])))


def _advance_resumed(
    events: Sequence[InputEvent],
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    trajectory: Trajectory,
    moment: datetime,
) -> Checkpoint:
    """``advance(events, ..., resume_from(events, trajectory, moment, horizon))``, the fold
    at the resumption left to the compiled machine where it runs."""
    point = _resume_point([e.occurred_at for e in events], trajectory, moment, horizon)
    if point is None:
        return advance(events, timelines, until, horizon, START)
    kept, lo, hi = point
    return _advance(events, timelines, until, horizon, kept, None, (lo, hi))


def standing(
    checkpoint: Checkpoint, timelines: PolicyTimeline, promotions_at: datetime | None = None
) -> Assessment | None:
    """The assessment at the checkpoint's review instant, under the policy in effect there,
    with its status; promotions active at ``promotions_at`` apply when given (a decision)."""
    state, at, line = checkpoint.state, checkpoint.at, checkpoint.trajectory.line
    if state is None or at is None:
        return None
    policy, card = timelines.at(at), timelines.card_at(at)
    if promotions_at is None:
        return assess(state, at, policy, line, with_promotions=False, card=card)
    return assess(state, at, policy, line, promotions_at=promotions_at, card=card)


def update(
    stored: Checkpoint,
    fresh: Sequence[InputEvent],
    ledger: Sequence[InputEvent] | StoredLedger | None,
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    *,
    fresh_packed: Sequence[EventArgs] | None = None,
) -> Checkpoint:
    """The checkpoint after adding ``fresh`` events (deduplicated) to a user, reviewed up to
    ``until``: the same, whatever batches and order the events came in.

    ``ledger`` holds the user's earlier events; it may be None only when
    :func:`needs_ledger` says the stored checkpoint suffices (every fresh event is after the
    last review, no stored event is, and no event leaves the window before ``until``).
    ``fresh_packed``, when at hand, is every fresh event as :func:`compiled.pack_event`
    packs it, in any order (read from their ledger entries: none is packed again).
    """
    ordered = canonical(fresh)
    if ledger is None:
        return advance(ordered, timelines, until, horizon, stored)
    if isinstance(ledger, StoredLedger):
        done = _update_stored(stored, ordered, ledger, timelines, until, horizon, fresh_packed)
        if done is not None:
            return done
        ledger = ledger.events()
    events = canonical([*ledger, *ordered])
    if stored.at is None:
        return advance(events, timelines, until, horizon, START)
    if ordered and ordered[0].occurred_at <= stored.at:
        # A late event: the review instants from the one before it are recomputed.
        return _advance_resumed(
            events, timelines, until, horizon, stored.trajectory, ordered[0].occurred_at
        )
    return advance(events, timelines, until, horizon, stored)


#: The canonical order of packed events (:data:`compiled.EventArgs`): instant, then event id.
_CANONICAL_ARGS = itemgetter(0, 2)
_OCCURRED = itemgetter(0)


def _update_stored(
    stored: Checkpoint,
    ordered: list[InputEvent],
    ledger: StoredLedger,
    timelines: PolicyTimeline,
    until: datetime,
    horizon: timedelta,
    fresh_packed: Sequence[EventArgs] | None = None,
) -> Checkpoint | None:
    """:func:`update` with the stored ledger read by the compiled machine, its entries never
    built as Python events. None: Python must run it."""
    packed = ledger.packed()
    if packed is None or any(event.user_id != ledger.user_id for event in ordered):
        return None
    events = list(packed[0])
    if fresh_packed is not None and len(fresh_packed) == len(ordered):
        events.extend(fresh_packed)
    else:
        for event in ordered:
            args = compiled.pack_event(event)
            if args is None:
                return None
            events.append(args)
    events.sort(key=_CANONICAL_ARGS)

    trajectory, window = stored.trajectory, None
    fold = _stored_or_none(stored)
    if fold is None:
        return None
    if stored.at is None:
        trajectory, fold = START.trajectory, None
    elif ordered and ordered[0].occurred_at <= stored.at:
        # :func:`_resume_point_by`, read from the stored change records by the compiled
        # side, and the window bisected as microseconds: nothing of the user's history or
        # ledger made datetimes.
        horizon_us = duration_micros(horizon)
        point = compiled.resume_point(
            trajectory.records(), events[0][0], to_micros(ordered[0].occurred_at), horizon_us
        )
        if point is None:
            return None
        kept, at = point
        fold = None
        if not kept:
            trajectory = START.trajectory
        else:
            trajectory = trajectory.prefix(kept, from_micros(at), None)
            window = (
                bisect.bisect_right(events, at - horizon_us, key=_OCCURRED),
                bisect.bisect_right(events, at, key=_OCCURRED),
            )
    done = compiled.advance_appending(
        events,
        timelines,
        until,
        horizon,
        trajectory.line,
        trajectory.reviewed_at,
        fold or None,
        window,
    )
    return None if done is None else _appended(trajectory, done, ledger.user_id)


def _appended(trajectory: Trajectory, done: compiled.Appended, user_id: str) -> Checkpoint:
    """The checkpoint a compiled run left, from ``trajectory``: its new changes appended as
    stored records (the earlier ones neither decoded nor rebuilt)."""
    extended = trajectory.extended(done.added, done.reviewed_at, done.next_review)
    return Checkpoint.of_stored(
        extended, user_id, done.stored, done.score, done.values, done.stated
    )


def needs_ledger(
    stored: Checkpoint,
    fresh: Sequence[InputEvent],
    latest_event_at: datetime | None,
    until: datetime,
    horizon: timedelta,
) -> bool:
    """Whether :func:`update` needs the user's earlier events (a second read)."""
    first = stored.first_event_at
    if stored.at is None or first is None:
        return latest_event_at is not None  # a user with only stored future events
    if latest_event_at is not None and latest_event_at > stored.at:
        return True  # stored events not reviewed yet (dated after the last review)
    if any(e.occurred_at <= stored.at for e in fresh):
        return True  # late events land before the last review
    return first + horizon <= until  # an event leaves the window


def needs_ledger_at(
    stored: Checkpoint, latest_event_at: datetime | None, moment: datetime, horizon: timedelta
) -> bool:
    """Whether :func:`at_time` needs the user's events for ``moment``."""
    first = stored.first_event_at
    if stored.at is None or first is None:
        return latest_event_at is not None
    if moment < stored.at:
        return True
    if latest_event_at is not None and stored.at < latest_event_at:
        return True
    return first + horizon <= moment


def at_time(
    stored: Checkpoint,
    ledger: Sequence[InputEvent] | None,
    timelines: PolicyTimeline,
    moment: datetime,
    horizon: timedelta,
) -> Checkpoint:
    """The checkpoint at the last review instant ≤ ``moment`` (for a decision at
    ``moment``): the stored one advanced, or recomputed from the ledger for a past moment.
    ``ledger`` may be None only when ``needs_ledger(stored, [], ...)`` is false and
    ``moment`` is not before the last review."""
    if stored.at is not None and moment >= stored.at and ledger is None:
        return advance([], timelines, moment, horizon, stored)
    events = canonical(list(ledger or ()))
    if stored.at is None:
        return advance(events, timelines, moment, horizon, START)
    if moment >= stored.at:
        return advance(events, timelines, moment, horizon, stored)
    after = moment + timedelta(microseconds=1)
    return _advance_resumed(events, timelines, moment, horizon, stored.trajectory, after)


def features_at(checkpoint: Checkpoint) -> object:
    """The features at the checkpoint (for inspection)."""
    assert checkpoint.state is not None and checkpoint.at is not None
    return derive_features(checkpoint.state, checkpoint.at)
