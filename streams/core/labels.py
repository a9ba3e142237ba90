"""Labelled histories: point-in-time features and outcome labels from the event stream. Pure.

A row is ``(user_id, as_of, bad)``: an **observation point**. Its features are what the worker
would have computed at ``as_of`` — the user's events with ``occurred_at <= as_of`` inside the
horizon window, folded in canonical order by :func:`streams.core.state.fold_events`, closed
loans dropped, then :func:`streams.core.scoring.derive_features` at ``as_of`` — exactly the
fold :func:`streams.core.timeline.advance` keeps (tested bit for bit). Nothing after
``as_of`` is read for the features. Its label looks forward: **bad** when a repayment at
least ``bad_dpd`` days past due occurs within the performance window ``(as_of, as_of +
window]``. A row whose window is not over by the end of the data is *immature* and left out.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, timedelta

from schemas.models import InputEvent, RepaymentEvent
from streams.core.features import Features, derive_features
from streams.core.state import UserState, fold_events, without_paid_loans
from streams.core.timeline import canonical, month_start, next_month_start

#: The worker's default horizon (``CREDITLINE_EVENT_HORIZON_DAYS``): events older than this
#: before an instant are outside its window.
DEFAULT_HORIZON = timedelta(days=1826)


@dataclass(frozen=True, slots=True)
class Label:
    """An observation point and its outcome (``bad`` 1 or 0)."""

    user_id: str
    as_of: datetime
    bad: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the outcome of an observation point is defined."""

    #: The performance window after the observation point, in calendar months.
    window_months: int = 12
    #: Bad: a repayment at least this many days past due within the window.
    bad_dpd: int = 90
    #: Rows whose worst days past due within the window is at least this (but below
    #: ``bad_dpd``) are indeterminate and left out; None keeps them as good.
    indeterminate_dpd: int | None = None
    #: Leave out rows already bad at the observation point (``bad_dpd`` reached within the
    #: window before it): they are in default, not applicants to rank.
    exclude_defaulted: bool = True
    #: Leave out rows whose latest event is older than this before the point: the worker
    #: would not decide on such a stale score (the policy's ``stale_after_days``).
    stale_after: timedelta | None = timedelta(days=180)

    def describe(self) -> str:
        """The definition in words."""
        return f"{self.bad_dpd}+ days past due within {self.window_months} months"


DEFAULT_OUTCOME = Outcome()


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """Events and the labelled observation points built from them."""

    events: list[InputEvent]
    labels: list[Label]

    @property
    def bad_rate(self) -> float:
        """Share of bad rows."""
        return sum(label.bad for label in self.labels) / len(self.labels) if self.labels else 0.0


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole calendar months (the day clipped to the month's length)."""
    utc = moment.astimezone(UTC)
    return _moved(utc, utc.year * 12 + utc.month - 1 + months)


def months_after_micros(moment: datetime, count: int) -> list[int]:
    """``to_micros(add_months(moment, k))`` for k = 1, 2, … ``count``, in integer arithmetic
    (every declined request's path back asks for 24: no datetime is built for them)."""
    utc = moment.astimezone(UTC)
    time_of_day = (
        utc.hour * 3600 + utc.minute * 60 + utc.second
    ) * _MICROS_A_SECOND + utc.microsecond
    year, month = utc.year, utc.month
    # Days since the epoch of the 1st of each month, carried from month to month.
    first_day = date(year, month, 1).toordinal() - _EPOCH_ORDINAL
    ends = []
    for _ in range(count):
        first_day += _month_length(year, month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if year > MAXYEAR:  # where add_months raises too
            raise ValueError(f"year {year} is out of range")
        day = min(utc.day, _month_length(year, month))
        ends.append((first_day + day - 1) * _MICROS_A_DAY + time_of_day)
    return ends


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICROS_A_SECOND = 1_000_000
_MICROS_A_DAY = 86_400 * _MICROS_A_SECOND


def _moved(utc: datetime, index: int) -> datetime:
    """``utc`` in month ``index`` (year × 12 + month − 1), the day clipped to its length."""
    year, month = divmod(index, 12)
    month += 1
    return utc.replace(year=year, month=month, day=min(utc.day, _month_length(year, month)))


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if _leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """Every 00:00 UTC on a month's first day in ``[start, end]``."""
    moment = month_start(start)
    if moment < start:
        moment = next_month_start(start)
    points = []
    while moment <= end:
        points.append(moment)
        moment = next_month_start(moment)
    return points


def by_user(events: Iterable[InputEvent]) -> dict[str, list[InputEvent]]:
    """Events grouped per user, each list in canonical order."""
    grouped: dict[str, list[InputEvent]] = defaultdict(list)
    for event in events:
        grouped[event.user_id].append(event)
    return {user: canonical(items) for user, items in grouped.items()}


def _settled(state: UserState | None) -> UserState | None:
    return without_paid_loans(state) if state is not None else None


def features_over_time(
    events: Sequence[InputEvent],
    instants: Sequence[datetime],
    horizon: timedelta = DEFAULT_HORIZON,
) -> Iterator[Features | None]:
    """One user's features at each of ``instants`` (ascending), from ``events`` in canonical
    order: at each instant only events with ``occurred_at <= instant`` inside the window
    ``(instant - horizon, instant]`` count. None where no event is in the window."""
    times = [e.occurred_at for e in events]
    state: UserState | None = None
    folded = 0  # events[:folded] are in ``state``
    for instant in instants:
        upto = bisect.bisect_right(times, instant)
        lo = bisect.bisect_right(times, instant - horizon)
        if state is not None and state.first_event_at <= instant - horizon:
            # An event left the window: fold the window again, as the worker does.
            state = _settled(fold_events(None, events[lo:upto]))
        elif upto > folded:
            state = _settled(fold_events(state, events[max(folded, lo) : upto]))
        folded = upto
        yield derive_features(state, instant) if state is not None else None


def features_at(
    events: Sequence[InputEvent], instant: datetime, horizon: timedelta = DEFAULT_HORIZON
) -> Features | None:
    """One user's point-in-time features at ``instant`` (events in any order)."""
    return next(features_over_time(canonical(events), [instant], horizon))


def point_in_time_features(
    events: Iterable[InputEvent],
    labels: Sequence[Label],
    horizon: timedelta = DEFAULT_HORIZON,
) -> list[Features | None]:
    """The features of every label's user at its ``as_of``, in the order of ``labels`` (None
    for a user with no event in the window)."""
    histories = by_user(events)
    wanted: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        wanted[label.user_id].append(index)
    result: list[Features | None] = [None] * len(labels)
    for user, indices in wanted.items():
        indices.sort(key=lambda i: labels[i].as_of)
        instants = [labels[i].as_of for i in indices]
        history = histories.get(user, [])
        for index, features in zip(
            indices, features_over_time(history, instants, horizon), strict=True
        ):
            result[index] = features
    return result


def _worst_dpd(
    times: Sequence[datetime], dpd: Sequence[int], after: datetime, until: datetime
) -> int:
    """The worst days past due of repayments in ``(after, until]``."""
    lo = bisect.bisect_right(times, after)
    hi = bisect.bisect_right(times, until)
    return max(dpd[lo:hi], default=0)


def label_points(
    events: Iterable[InputEvent],
    *,
    points: Sequence[datetime] | None = None,
    observed_until: datetime | None = None,
    outcome: Outcome = DEFAULT_OUTCOME,
    user_points: Mapping[str, Sequence[datetime]] | None = None,
) -> LabelledSet:
    """Labelled observation points from observed histories.

    ``points``: the observation instants (default: every month start from the first event on
    whose performance window has ended by ``observed_until``, the latest event by default).
    ``user_points``: instead, each user's own instants (e.g. the decisions they were given);
    users without any get no row.
    A user gets a row at a point when they have an event at or before it and the row is
    neither immature, stale, already defaulted nor indeterminate (see :class:`Outcome`).
    """
    histories = by_user(events)
    if not histories:
        return LabelledSet([], [])
    everything = [e for history in histories.values() for e in history]
    end = observed_until or max(e.occurred_at for e in everything)
    if points is None:
        first = min(history[0].occurred_at for history in histories.values())
        points = [
            p for p in month_starts(first, end) if add_months(p, outcome.window_months) <= end
        ]
    instants = sorted(p for p in points if add_months(p, outcome.window_months) <= end)
    labels: list[Label] = []
    for user in sorted(histories):
        history = histories[user]
        if user_points is not None:
            own = user_points.get(user, ())
            instants = sorted({p for p in own if add_months(p, outcome.window_months) <= end})
        times = [e.occurred_at for e in history]
        repayments = [e for e in history if isinstance(e, RepaymentEvent)]
        r_times = [e.occurred_at for e in repayments]
        r_dpd = [e.days_past_due for e in repayments]
        for instant in instants:
            seen = bisect.bisect_right(times, instant)
            if not seen:
                continue  # no history yet: nothing to score
            if outcome.stale_after is not None and instant - times[seen - 1] > outcome.stale_after:
                continue
            back = add_months(instant, -outcome.window_months)
            if outcome.exclude_defaulted and _worst_dpd(r_times, r_dpd, back, instant) >= (
                outcome.bad_dpd
            ):
                continue
            worst = _worst_dpd(r_times, r_dpd, instant, add_months(instant, outcome.window_months))
            bad = worst >= outcome.bad_dpd
            if (
                not bad
                and outcome.indeterminate_dpd is not None
                and worst >= outcome.indeterminate_dpd
            ):
                continue
            labels.append(Label(user, instant, int(bad)))
    labelled_users = {label.user_id for label in labels}
    return LabelledSet([e for e in everything if e.user_id in labelled_users], labels)
