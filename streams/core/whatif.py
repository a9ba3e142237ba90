"""What-if: logged loan requests re-answered under the live configuration and a candidate one,
through the same core the worker runs. Pure.

**The candidate** replaces the live versions it names *for all time*, as if it had always been
in force: a candidate policy is the only policy at every instant (the live policy versions
are dropped), a candidate scorecard the only card. What the candidate does not replace stays
live: with a policy alone, the live card history still scores; with a card alone, the live
policy versions still decide (:func:`candidate_timeline`).

**Both sides are re-derived** from the logs, neither is read from the published decisions: a
status machine is path dependent (hysteresis, dwell, freezes), so each side runs the user's
machine over the user's whole logged history, with its own configuration, up to each
request's instant (:func:`~streams.core.timeline.advance`), and answers it there with
:func:`~streams.core.answer.answer_in_full` — the worker's own path. A user's requests are
taken in order of their instants and each side's machine goes on from where the previous
request left it, so a user's history is run once per side however many requests they made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.models import EffectiveStatus, InputEvent, LoanDecision, LoanRequest, Outcome
from streams.core.answer import answer_in_full, judgement_instant
from streams.core.policy import Policy
from streams.core.reasons import Language
from streams.core.scorecard import ScorecardDocument, ScorecardTimeline
from streams.core.timeline import START, Checkpoint, PolicyTimeline, advance, canonical


def candidate_timeline(
    live: PolicyTimeline,
    policy: Policy | None = None,
    card: ScorecardDocument | None = None,
) -> PolicyTimeline:
    """The candidate configuration: ``policy`` and/or ``card`` in force at every instant, the
    live history for whatever is not replaced."""
    if policy is None and card is None:
        raise ValueError("a candidate replaces the policy, the scorecard or both")
    cards = ScorecardTimeline(card) if card is not None else live.cards
    if policy is None:
        return live.with_cards(cards)
    return PolicyTimeline(policy, cards=cards)


@dataclass(frozen=True, slots=True)
class Window:
    """The requests looked at: those judged at ``start ≤ T < end``."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        """Whether ``moment`` is in the window."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """A request as the log holds it, with the instant the worker judged it at."""

    request: LoanRequest
    #: The broker's append time of its record.
    arrival: datetime
    #: ``judgement_instant(request, arrival, tolerance)``; None: the time was not trusted.
    at: datetime | None
    #: Its decision on the decisions topic, when one was found.
    published: LoanDecision | None = None

    @property
    def decided_at(self) -> datetime:
        """The ``decided_at`` both sides answer with: the published one, so that the live
        side can equal the published decision in every field (else the arrival)."""
        return self.published.decided_at if self.published is not None else self.arrival

    @property
    def instant(self) -> datetime:
        """Where the request falls in time: its judgement instant, or for a request whose
        time was not trusted, its arrival."""
        return self.at if self.at is not None else self.arrival


def logged_request(request: LoanRequest, arrival: datetime, tolerance: timedelta) -> LoggedRequest:
    """A logged request with its judgement instant computed exactly as the worker does."""
    return LoggedRequest(request, arrival, judgement_instant(request, arrival, tolerance))


@dataclass(frozen=True, slots=True)
class Pair:
    """One request answered by both sides."""

    request_id: str
    user_id: str
    live: LoanDecision
    candidate: LoanDecision
    published: LoanDecision | None = None

    @property
    def flipped(self) -> bool:
        """Whether the outcome differs."""
        return self.live.outcome is not self.candidate.outcome


@dataclass(frozen=True, slots=True)
class LineEnd:
    """A user's line status at the end of the window on each side (None: no state)."""

    user_id: str
    live: EffectiveStatus | None
    candidate: EffectiveStatus | None


class _Side:
    """One configuration's machine for one user, going on from request to request."""

    def __init__(
        self, events: Sequence[InputEvent], timelines: PolicyTimeline, horizon: timedelta
    ) -> None:
        self.events = events
        self.timelines = timelines
        self.horizon = horizon
        self.checkpoint: Checkpoint = START

    def reach(self, moment: datetime) -> Checkpoint:
        # Valid from the previous checkpoint: ``events`` holds every event of the user in
        # canonical order, and ``moment`` is not before the previous one.
        self.checkpoint = advance(
            self.events, self.timelines, moment, self.horizon, start=self.checkpoint
        )
        return self.checkpoint

    def answer(self, logged: LoggedRequest, language: Language) -> LoanDecision:
        checkpoint = START if logged.at is None else self.reach(logged.at)
        decision, _ = answer_in_full(
            logged.request, checkpoint, self.timelines, logged.at, logged.decided_at, language
        )
        return decision


def compare_user(
    requests: Sequence[LoggedRequest],
    events: Sequence[InputEvent],
    live: PolicyTimeline,
    candidate: PolicyTimeline,
    horizon: timedelta,
    end: datetime,
    language: Language = "en",
    on_answered: Callable[[], None] = lambda: None,
) -> tuple[list[Pair], LineEnd]:
    """Answer one user's ``requests`` (all instants before ``end``) on both sides from the
    user's ``events`` (every one logged, any order), and say the line status at ``end``."""
    ordered = canonical(events)
    sides = (_Side(ordered, live, horizon), _Side(ordered, candidate, horizon))
    pairs: list[Pair] = []
    # Untrusted requests use no machine; the others in order of their instants.
    for logged in sorted(
        requests, key=lambda r: (r.at is not None, r.instant, r.request.request_id)
    ):
        before, after = (side.answer(logged, language) for side in sides)
        request = logged.request
        pairs.append(Pair(request.request_id, request.user_id, before, after, logged.published))
        on_answered()
    user = requests[0].request.user_id if requests else (ordered[0].user_id if ordered else "")
    live_line, candidate_line = (side.reach(end).trajectory.line for side in sides)
    line_end = LineEnd(
        user,
        live_line.status if live_line is not None else None,
        candidate_line.status if candidate_line is not None else None,
    )
    return pairs, line_end


#: Outcomes in the order reports show them.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome.APPROVED,
    Outcome.PARTIALLY_APPROVED,
    Outcome.DECLINED,
    Outcome.REVIEW,
)
