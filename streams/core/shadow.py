"""A candidate in shadow: a policy and/or a scorecard answering every loan request beside the
live configuration, published apart and deciding nothing. Pure.

A shadow answer is what the decision would have been **had the candidate been promoted at the
request's instant**: the live versions, with the candidate's taking effect then. The user's
status machine continues from the live one with a review at that instant under the candidate
— exactly what happens when a promoted version takes effect — so ``shadow promote`` makes the
candidate's answers the live ones from the next request on. (``what-if`` answers the other
question: had the candidate always been in force.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.answer import answer
from streams.core.policy import Policy
from streams.core.reasons import Language
from streams.core.scorecard import ScorecardDocument, ScorecardTimeline
from streams.core.timeline import Checkpoint, PolicyTimeline, advance


@dataclass(frozen=True, slots=True)
class Candidate:
    """What is installed in shadow (at least one of the two) and since when."""

    policy: Policy | None
    card: ScorecardDocument | None
    since: datetime
    installed_by: str | None = None
    comment: str | None = None

    @property
    def label(self) -> str:
        """The candidate's versions, for logs and tables."""
        parts = []
        if self.policy is not None:
            parts.append(f"policy {self.policy.version}")
        if self.card is not None:
            parts.append(f"scorecard {self.card.version}")
        return " + ".join(parts) or "nothing"


def switched_at(live: PolicyTimeline, at: datetime, candidate: Candidate) -> PolicyTimeline:
    """The live versions with the candidate's taking effect at ``at`` (a version taking
    effect at the same instant as a live one wins: it is the later one)."""
    policies = [*live.versions, *([(at, candidate.policy)] if candidate.policy else [])]
    cards = [*live.cards.versions, *([(at, candidate.card)] if candidate.card else [])]
    return PolicyTimeline.of(live.base, policies, ScorecardTimeline.of(live.cards.base, cards))


def shadow_answer(
    request: LoanRequest,
    checkpoint: Checkpoint,
    events: Sequence[InputEvent],
    live: PolicyTimeline,
    candidate: Candidate,
    at: datetime,
    decided_at: datetime,
    horizon: timedelta,
    language: Language = "en",
) -> LoanDecision:
    """The candidate's decision for ``request`` judged at ``at``, from the live
    ``checkpoint`` (the user's machine at the last review ≤ ``at``). ``events``: the user's
    events in canonical order when the live answer needed them (see
    :func:`streams.core.timeline.needs_ledger_at`), else empty."""
    timelines = switched_at(live, at, candidate)
    moved = advance(events, timelines, at, horizon, checkpoint) if checkpoint.at else checkpoint
    return answer(request, moved, timelines, at, decided_at, language)
