"""The running comparison of a candidate in shadow with the live configuration, from the logs:
``creditline shadow status``. Every decision the candidate published on the shadow topic since
it was installed is paired with the live decision of the same request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from schemas.models import LoanDecision
from streams.ports import TopicReader
from streams.service.logs import Progress, read_decisions
from streams.topics import Topics

_APPROVALS = ("approved", "partially_approved")


@dataclass
class ShadowComparison:
    """Pairs of live and candidate decisions since ``since``."""

    since: datetime | None
    pairs: int = 0
    #: (live outcome, candidate outcome) → requests.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    live_approved: Decimal = Decimal("0.00")
    shadow_approved: Decimal = Decimal("0.00")
    #: Request ids the two answered differently (outcome or approved amount), oldest first.
    disagreeing: list[str] = field(default_factory=list)
    #: Candidate decisions whose live decision was not found (yet).
    unpaired: int = 0

    @property
    def disagreements(self) -> int:
        """Requests answered with another outcome by the candidate."""
        return sum(n for (live, shadow), n in self.outcomes.items() if live != shadow)

    def to_json(self, limit: int = 100) -> dict[str, object]:
        """The comparison as JSON (money as decimal strings)."""
        approvals = {
            side: sum(
                n
                for (live, shadow), n in self.outcomes.items()
                if (live if side == "live" else shadow) in _APPROVALS
            )
            for side in ("live", "shadow")
        }
        return {
            "since": self.since.isoformat() if self.since else None,
            "requests": self.pairs,
            "disagreements": self.disagreements,
            "outcomes": [
                {"live": live, "shadow": shadow, "requests": n}
                for (live, shadow), n in sorted(self.outcomes.items())
            ],
            "approvals": approvals,
            "approved_amount": {
                "live": str(self.live_approved),
                "shadow": str(self.shadow_approved),
                "difference": str(self.shadow_approved - self.live_approved),
            },
            "disagreeing_request_ids": self.disagreeing[:limit],
            "unpaired": self.unpaired,
        }


def compare(
    live: dict[str, LoanDecision], shadow: dict[str, LoanDecision], since: datetime | None
) -> ShadowComparison:
    """Pair every candidate decision decided at or after ``since`` with the live one."""
    result = ShadowComparison(since)
    ordered = sorted(shadow.values(), key=lambda d: (d.decided_at, d.request_id))
    for candidate in ordered:
        if since is not None and candidate.decided_at < since:
            continue
        found = live.get(candidate.request_id)
        if found is None:
            result.unpaired += 1
            continue
        result.pairs += 1
        result.outcomes[(found.outcome.value, candidate.outcome.value)] += 1
        result.live_approved += found.approved_amount
        result.shadow_approved += candidate.approved_amount
        if (found.outcome, found.approved_amount) != (
            candidate.outcome,
            candidate.approved_amount,
        ):
            result.disagreeing.append(candidate.request_id)
    return result


async def shadow_comparison(
    reader: TopicReader,
    topics: Topics,
    since: datetime | None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> ShadowComparison:
    """Read both decision topics and compare (see :func:`compare`)."""
    progress = Progress(on_progress)
    shadow = await read_decisions(reader, topics, None, progress, shadow=True)
    live = await read_decisions(reader, topics, set(shadow), progress)
    return compare(live, shadow, since)
