"""The what-if report: a pure function of the per-request pairs and the users' line statuses
at the end of the window (:mod:`streams.core.whatif`); its forms (JSON, Markdown, a short
text) are :mod:`streams.core.whatif_render`. Money stays :class:`~decimal.Decimal` (strings
in JSON), never a float.

* **matrix**: requests counted by live outcome → candidate outcome (the diagonal holds the
  unchanged ones); a request is *flipped* when the outcome differs.
* **by segment**, before (live decisions, by their ``segment``) and after (candidate decisions,
  by theirs): requests, approvals (approved or partially approved), the approved amount, the
  mean PD of the approvals, and their **expected loss** = Σ PD × approved amount (PD from the
  decision's ``pd``: the scorecard's probability of default over ``pd_horizon_months``), in
  total and per approval. Decisions without a state (no history, untrusted time) have no
  segment: they count under ``unscored``.
* **overrides**: decisions whose outcome overrides the status the app displayed, per side.
* **status changes**: users whose line status at the end of the window differs, by from → to
  (``none``: no state).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from schemas.models import EffectiveStatus, LoanDecision, Outcome
from streams.core.reasons import ENVIRONMENTAL, ReasonCode
from streams.core.whatif import OUTCOMES, LineEnd, Pair, Window

CENT = Decimal("0.01")
#: A mean PD has the digits of a decision's (streams.core.decision.PD_DIGITS).
_PD_STEP = Decimal("0.000001")
#: The segment key of decisions made without a state.
UNSCORED = "unscored"
#: Line statuses in the order reports show them; ``none`` is no state.
STATUSES = ("open", "closed", "frozen", "none")
#: Flipped requests listed by default (all are counted).
FLIPPED_LISTED = 100
_APPROVALS = (Outcome.APPROVED, Outcome.PARTIALLY_APPROVED)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Figures:
    """One side's figures over a set of decisions."""

    requests: int = 0
    approvals: int = 0
    approved_amount: Decimal = Decimal("0.00")
    #: Mean PD of the approvals that carry one (None without any).
    mean_pd: float | None = None
    #: Σ PD × approved amount over the approvals, to the cent.
    expected_loss: Decimal = Decimal("0.00")

    @property
    def mean_expected_loss(self) -> Decimal | None:
        """Expected loss per approval, to the cent (None without approvals)."""
        return _cents(self.expected_loss / self.approvals) if self.approvals else None

    def as_json(self) -> dict[str, Any]:
        """The JSON form: amounts as decimal strings."""
        mean_el = self.mean_expected_loss
        return {
            "requests": self.requests,
            "approvals": self.approvals,
            "approved_amount": str(self.approved_amount),
            "mean_pd": self.mean_pd,
            "expected_loss": str(self.expected_loss),
            "mean_expected_loss": str(mean_el) if mean_el is not None else None,
        }


def figures(decisions: Iterable[LoanDecision]) -> Figures:
    """The figures of ``decisions`` (pure)."""
    requests = approvals = with_pd = 0
    approved = loss = Decimal(0)
    pd_sum = Decimal(0)
    for d in decisions:
        requests += 1
        if d.outcome not in _APPROVALS:
            continue
        approvals += 1
        approved += d.approved_amount
        if d.pd is not None:
            pd = Decimal(repr(d.pd))  # the published digits, exactly
            with_pd += 1
            pd_sum += pd
            loss += pd * d.approved_amount
    mean_pd = float((pd_sum / with_pd).quantize(_PD_STEP, ROUND_HALF_EVEN)) if with_pd else None
    return Figures(requests, approvals, _cents(approved), mean_pd, _cents(loss))


def segment_of(decision: LoanDecision) -> str:
    """The segment a decision counts under."""
    return decision.segment or UNSCORED


def _status(status: EffectiveStatus | None) -> str:
    return status.value if status is not None else "none"


@dataclass(frozen=True, slots=True)
class Flip:
    """A request whose outcome differs."""

    request_id: str
    user_id: str
    before: Outcome
    after: Outcome
    amount_before: Decimal
    amount_after: Decimal
    evaluated_at: datetime | None


@dataclass(frozen=True, slots=True)
class PublishedCheck:
    """How the live side compares with the decisions on the decisions topic."""

    found: int = 0
    matching: int = 0
    differing: int = 0
    #: Published decisions that depended on the environment (Redis or the policy topic not
    #: answering, a full history): not a function of the logs, so not compared.
    environmental: int = 0
    #: Request ids whose live side differs from the published decision (the first ones).
    differing_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class WhatIfReport:
    """The comparison of the live and the candidate configuration over a window."""

    window: Window
    live: str
    candidate: str
    requests: int
    users: int
    untrusted: int
    matrix: dict[tuple[Outcome, Outcome], int]
    amount_changed: int
    totals: tuple[Figures, Figures]
    by_segment: dict[str, tuple[Figures, Figures]]
    overrides: tuple[int, int]
    lines: int
    status_changes: dict[tuple[str, str], int]
    flips: tuple[Flip, ...]
    published: PublishedCheck = field(default_factory=PublishedCheck)
    flipped_limit: int = FLIPPED_LISTED

    @property
    def flipped(self) -> int:
        """Requests whose outcome differs."""
        return sum(n for (a, b), n in self.matrix.items() if a is not b)

    @property
    def lines_changed(self) -> int:
        """Users whose line status at the end of the window differs."""
        return sum(self.status_changes.values())


def _published(pairs: Sequence[Pair], listed: int) -> PublishedCheck:
    found = matching = environmental = 0
    differing: list[str] = []
    for p in pairs:
        if p.published is None:
            continue
        found += 1
        if {r.code for r in p.published.reasons} & ENVIRONMENTAL:
            environmental += 1
        elif p.published == p.live:
            matching += 1
        else:
            differing.append(p.request_id)
    return PublishedCheck(
        found, matching, len(differing), environmental, tuple(sorted(differing)[:listed])
    )


def build_report(
    pairs: Sequence[Pair],
    ends: Sequence[LineEnd],
    window: Window,
    live: str,
    candidate: str,
    flipped_limit: int = FLIPPED_LISTED,
) -> WhatIfReport:
    """The report over ``pairs`` (one per request) and ``ends`` (one per user)."""
    matrix = {(a, b): 0 for a in OUTCOMES for b in OUTCOMES}
    amount_changed = 0
    flips: list[Flip] = []
    for p in sorted(pairs, key=lambda p: (p.live.evaluated_at is None, p.request_id)):
        before, after = p.live, p.candidate
        matrix[before.outcome, after.outcome] += 1
        if p.flipped:
            flips.append(
                Flip(
                    p.request_id,
                    p.user_id,
                    before.outcome,
                    after.outcome,
                    before.approved_amount,
                    after.approved_amount,
                    before.evaluated_at,
                )
            )
        elif before.approved_amount != after.approved_amount:
            amount_changed += 1
    segments = sorted(
        {segment_of(p.live) for p in pairs} | {segment_of(p.candidate) for p in pairs}
    )
    by_segment = {
        name: (
            figures(p.live for p in pairs if segment_of(p.live) == name),
            figures(p.candidate for p in pairs if segment_of(p.candidate) == name),
        )
        for name in segments
    }
    changes = Counter(
        (_status(e.live), _status(e.candidate)) for e in ends if e.live is not e.candidate
    )
    flips.sort(key=lambda f: f.request_id)
    return WhatIfReport(
        window=window,
        live=live,
        candidate=candidate,
        requests=len(pairs),
        users=len({p.user_id for p in pairs}),
        untrusted=sum(_untrusted(p.live) for p in pairs),
        matrix=matrix,
        amount_changed=amount_changed,
        totals=(figures(p.live for p in pairs), figures(p.candidate for p in pairs)),
        by_segment=by_segment,
        overrides=(
            sum(p.live.overrides_displayed_status for p in pairs),
            sum(p.candidate.overrides_displayed_status for p in pairs),
        ),
        lines=len(ends),
        status_changes=dict(sorted(changes.items(), key=_status_order)),
        flips=tuple(flips[:flipped_limit]),
        published=_published(pairs, flipped_limit),
        flipped_limit=flipped_limit,
    )


def _untrusted(decision: LoanDecision) -> bool:
    return any(r.code == ReasonCode.REQUEST_TIME_UNTRUSTED.value for r in decision.reasons)


def _status_order(item: tuple[tuple[str, str], int]) -> tuple[int, int]:
    (a, b), _ = item
    return STATUSES.index(a), STATUSES.index(b)
