"""What a status-change event states: the line's standing at its last review.

The event carries the status, the score, the credit limit and the reasons. The full
:func:`~streams.core.scoring.assess` derives every feature from the decoded fold (the
limit's money, the available amount, the probability of default); a line that is not open
has no limit, so none of that money is read. When the compiled machine made the
checkpoint, its last review states the score, each characteristic's points, the segment
and the exception it found (``Checkpoint.stated``): such a line's standing is stated from
them alone, the fold never decoded and no bin or rule looked up again, at a fraction of
the cost. An open line, and a checkpoint Python's own machine made, are assessed in full.
``tests/unit/test_announcement.py`` holds both ways equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import orjson

from schemas.models import EffectiveStatus, Reason, format_money
from streams.core.decision import status_reasons
from streams.core.features import SCORE_MAX, SCORE_MIN
from streams.core.policy import Policy, SegmentException
from streams.core.reasons import Language, ReasonCode, reason
from streams.core.scorecard import ScorecardDocument
from streams.core.scoring import (
    NO_LIMIT,
    STANDARD_SEGMENT,
    Assessment,
    LineStatus,
    Standing,
)
from streams.core.timeline import Checkpoint, PolicyTimeline, standing


@dataclass(frozen=True, slots=True)
class StatedStanding(Standing):
    """The standing of a line that is not open, as its status-change event states it."""

    user_id: str
    #: The review instant.
    at: datetime
    line: LineStatus
    score: int
    points: Mapping[str, int]
    segment: str
    exception: SegmentException | None
    policy_version: str
    card: ScorecardDocument = field(repr=False, compare=False)

    @property
    def credit_limit(self) -> Decimal:
        """Zero: the line is not open."""
        return NO_LIMIT


def announced_standing(
    checkpoint: Checkpoint, timelines: PolicyTimeline
) -> Assessment | StatedStanding | None:
    """The standing at the checkpoint's last review, as a status-change event needs it
    (None without a fold): as the compiled machine's last review stated it when it did and
    the line is not open, else assessed in full (:func:`~streams.core.timeline.standing`)."""
    stated, line, at = checkpoint.stated, checkpoint.trajectory.line, checkpoint.at
    if (
        stated is None
        or checkpoint.score is None
        or line is None
        or at is None
        or line.status is EffectiveStatus.OPEN
    ):
        return standing(checkpoint, timelines)
    policy, card = timelines.at(at), timelines.card_at(at)
    # As the machine stated it: no bin, rule or exception is looked up again here.
    score = checkpoint.score
    points = dict(zip(card.characteristics, stated.points, strict=True))
    segments = policy.segments
    segment = segments[stated.segment].name if stated.segment < len(segments) else STANDARD_SEGMENT
    exception = None if stated.exception is None else policy.exceptions[stated.exception]
    return StatedStanding(
        user_id=checkpoint.user_id,
        at=at,
        line=line,
        score=score,
        points=points,
        segment=segment,
        exception=exception,
        policy_version=policy.version,
        card=card,
    )


def status_change_event(
    previous: LineStatus | None,
    standing: Assessment | StatedStanding,
    policy: Policy,
    language: Language,
    *,
    restated: bool,
) -> bytes:
    """The ``credit.line-status`` event announcing ``standing``'s line (after ``previous``),
    with its reasons under ``policy`` (a late event first when ``restated``).

    The bytes ``LineStatusChanged(...).model_dump_json()`` gives (held equal by
    ``tests/unit/test_announcement.py``), written by orjson with each reason's JSON made once:
    a backfill announces a change at about every fourth event, and the model's validation
    and serialisation were a tenth of a user's fold."""
    reasons: list[Reason] = status_reasons(standing, policy, language)
    if restated:
        reasons = [reason(ReasonCode.LATE_EVENT_RESTATED, language), *reasons]
    score = standing.score
    if not SCORE_MIN <= score <= SCORE_MAX:  # what the model's validation would refuse
        raise ValueError(f"score {score} is outside {SCORE_MIN}-{SCORE_MAX}")
    return orjson.dumps(
        {
            "user_id": standing.user_id,
            "changed_at": standing.line.since,
            "previous_status": previous.status.value if previous else None,
            "status": standing.status.value,
            "credit_limit": format_money(standing.credit_limit),
            "score": score,
            "reasons": orjson.Fragment(b"[" + b",".join(map(reason_json, reasons)) + b"]"),
            "policy_version": standing.policy_version,
            "scorecard_version": standing.scorecard_version,
        },
        option=orjson.OPT_UTC_Z,
    )


#: Each reason's JSON by the reason's identity (the reasons are a few dozen shared objects:
#: :func:`~streams.core.reasons.make_reason`); the entry holds its reason, so the identity is
#: never another object's while the entry lasts.
_REASON_JSON: dict[int, tuple[Reason, bytes]] = {}
_REASON_JSON_ENTRIES = 4096


def reason_json(made: Reason) -> bytes:
    """``made.model_dump_json()``, made once per reason object."""
    hit = _REASON_JSON.get(id(made))
    if hit is not None and hit[0] is made:
        return hit[1]
    data = made.model_dump_json().encode()
    if len(_REASON_JSON) >= _REASON_JSON_ENTRIES:
        _REASON_JSON.clear()  # only reasons made outside the shared cache get here
    _REASON_JSON[id(made)] = (made, data)
    return data
