"""The worked example of docs/policy.md's "Changing strategy": a simulated population
(:mod:`streams.devtools.simulation`) and its loan requests, a candidate policy taken through
what-if, the apply guard and shadow — computed in process by the pure core the commands use
(:func:`~streams.core.whatif.compare_user`, :func:`~streams.core.whatif_report.build_report`,
:func:`~streams.core.shadow.shadow_answer`, :func:`~streams.service.shadow.compare`) and
rendered as the commands print it. Deterministic: fixed instants and seeds."""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.models import InputEvent, LoanDecision
from streams.core.policy import Policy, load_default_policy, parse_policy
from streams.core.shadow import Candidate, shadow_answer
from streams.core.timeline import START, Checkpoint, PolicyTimeline, advance, canonical
from streams.core.whatif import (
    LineEnd,
    LoggedRequest,
    Pair,
    Window,
    candidate_timeline,
    compare_user,
    logged_request,
)
from streams.core.whatif_render import outcomes_markdown, render_summary, segments_markdown
from streams.core.whatif_report import WhatIfReport, build_report
from streams.devtools.simulation import population_events, requests_between
from streams.service.shadow import ShadowComparison, compare

#: When the candidate is tried: the what-if and the shadow's installation…
TRIED = datetime(2026, 11, 30, tzinfo=UTC)
#: …and when the shadow is looked at (and promoted).
LOOKED = datetime(2026, 12, 7, tzinfo=UTC)
#: The what-if's window before TRIED, and the apply guard's.
WHAT_IF_DAYS, GUARD_DAYS = 14, 7
USERS, REQUESTS_PER_USER, SEED = 300, 3, 7
CANDIDATE_VERSION, REOPEN_AT = "reopen-575", 575
HORIZON = timedelta(days=1826)
TOLERANCE = timedelta(seconds=300)


def candidate_policy() -> Policy:
    """The shipped default with a lower reopening threshold, under its own version."""
    doc = load_default_policy().model_dump(mode="json", exclude_none=True)
    doc["version"] = CANDIDATE_VERSION
    doc["status"]["thresholds"]["reopen_at"] = REOPEN_AT
    return parse_policy(json.dumps(doc))


@dataclass(frozen=True)
class Example:
    """Everything the generated sections show."""

    live: PolicyTimeline
    candidate: Policy
    events: int
    requests: int
    what_if: WhatIfReport
    guard: WhatIfReport
    shadow: ShadowComparison
    cross_check: WhatIfReport
    #: Requests since the shadow started whose shadow decision has the what-if candidate
    #: side's outcome and approved amount; decisions equal in every field.
    same_answer: int
    same_decision: int
    #: Fields in which the other decisions differ → how many.
    differing_fields: Counter[str]
    #: The what-if's pairs (14 days), the week's, and the shadow's decisions of that week.
    pairs: list[Pair]
    week: list[Pair]
    shadow_decisions: dict[str, LoanDecision]
    #: The what-if's requests answered as a shadow answers (promoted at each instant).
    promoted: dict[str, LoanDecision]


def _compare(
    requests: Sequence[LoggedRequest],
    events: dict[str, list[InputEvent]],
    live: PolicyTimeline,
    candidate: PolicyTimeline,
    end: datetime,
) -> tuple[list[Pair], list[LineEnd]]:
    by_user: dict[str, list[LoggedRequest]] = defaultdict(list)
    for logged in requests:
        by_user[logged.request.user_id].append(logged)
    pairs: list[Pair] = []
    ends: list[LineEnd] = []
    for user in sorted(by_user):
        found, line = compare_user(by_user[user], events[user], live, candidate, HORIZON, end)
        pairs += found
        ends.append(line)
    return pairs, ends


def _report(pairs: list[Pair], ends: list[LineEnd], window: Window) -> WhatIfReport:
    users = {p.user_id for p in pairs}
    return build_report(
        pairs,
        [e for e in ends if e.user_id in users],
        window,
        "the shipped default policy and scorecard",
        f"policy {CANDIDATE_VERSION} with the live scorecard history, for all time",
    )


def _shadow_decisions(
    requests: Sequence[LoggedRequest],
    events: dict[str, list[InputEvent]],
    live: PolicyTimeline,
    candidate: Candidate,
) -> dict[str, LoanDecision]:
    """What the worker publishes on the shadow topic: each request answered from the live
    machine at its instant, with the candidate promoted then."""
    found: dict[str, LoanDecision] = {}
    checkpoints: dict[str, Checkpoint] = {}
    for logged in sorted(requests, key=lambda r: (r.instant, r.request.request_id)):
        user, at = logged.request.user_id, logged.at
        assert at is not None
        ordered = events[user]
        checkpoint = advance(ordered, live, at, HORIZON, checkpoints.get(user, START))
        checkpoints[user] = checkpoint
        found[logged.request.request_id] = shadow_answer(
            logged.request, checkpoint, ordered, live, candidate, at, logged.decided_at, HORIZON
        )
    return found


@functools.cache
def example() -> Example:
    """The worked example, computed once."""
    live = PolicyTimeline(load_default_policy())
    policy = candidate_policy()
    always = candidate_timeline(live, policy)
    start = TRIED - timedelta(days=WHAT_IF_DAYS)
    history = population_events(USERS, SEED, LOOKED)
    asks = requests_between(USERS, SEED, start, LOOKED, REQUESTS_PER_USER)
    logged = [logged_request(r, r.requested_at, TOLERANCE) for r in asks]

    def events_until(moment: datetime) -> dict[str, list[InputEvent]]:
        by_user: dict[str, list[InputEvent]] = defaultdict(list)
        for event in history:
            if event.occurred_at <= moment:
                by_user[event.user_id].append(event)
        return {user: canonical(found) for user, found in by_user.items()}

    # On TRIED: what-if over the last 14 days (and the guard's 7), then shadow from then on.
    before, after = events_until(TRIED), events_until(LOOKED)
    earlier = [r for r in logged if r.instant < TRIED]
    pairs, ends = _compare(earlier, before, live, always, TRIED)
    guard_start = TRIED - timedelta(days=GUARD_DAYS)
    guard = [p for p in pairs if p.live.evaluated_at and p.live.evaluated_at >= guard_start]
    later = [r for r in logged if r.instant >= TRIED]
    in_shadow = Candidate(policy, None, TRIED, "alice", "reopen at 575")
    shadow = _shadow_decisions(later, after, live, in_shadow)
    # On LOOKED: the same week's what-if, to set beside the shadow's answers.
    week, week_ends = _compare(later, after, live, always, LOOKED)
    same_answer = same_decision = 0
    fields: Counter[str] = Counter()
    for p in week:
        answered = shadow[p.request_id]
        same_answer += (answered.outcome, answered.approved_amount) == (
            p.candidate.outcome,
            p.candidate.approved_amount,
        )
        same_decision += answered == p.candidate
        a, b = answered.model_dump(), p.candidate.model_dump()
        fields.update(name for name in a if a[name] != b[name])
    return Example(
        live=live,
        candidate=policy,
        events=len(history),
        requests=len(asks),
        what_if=_report(pairs, ends, Window(start, TRIED)),
        guard=_report(guard, ends, Window(guard_start, TRIED)),
        shadow=compare({p.request_id: p.live for p in week}, shadow, TRIED),
        cross_check=_report(week, week_ends, Window(TRIED, LOOKED)),
        same_answer=same_answer,
        same_decision=same_decision,
        differing_fields=fields,
        pairs=pairs,
        week=week,
        shadow_decisions=shadow,
        promoted=_shadow_decisions(earlier, before, live, Candidate(policy, None, start)),
    )


#: Why a what-if flips a request (see :func:`flip_kind`).
REOPENED, HYSTERESIS, LIMIT, OTHER = "reopened", "hysteresis", "limit", "other"


def flip_kind(pair: Pair) -> str:
    """Why the candidate answers this request otherwise: a closed line that its lower
    threshold reopens (``reopened``); a line it would have reopened before and kept open since
    by hysteresis, its score now below its ``reopen_at`` (``hysteresis``); an open line on
    both sides with a larger limit (``limit``)."""
    live, candidate = pair.live.effective_status.value, pair.candidate.effective_status.value
    if (live, candidate) == ("closed", "open"):
        return REOPENED if (pair.live.score or 0) >= REOPEN_AT else HYSTERESIS
    return LIMIT if (live, candidate) == ("open", "open") else OTHER


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def what_if_markdown() -> str:
    """The population, the candidate and the what-if on the day it is tried."""
    ex = example()
    report = ex.what_if
    default = ex.live.base.status.thresholds.reopen_at
    changes = report.status_changes
    lines = [
        f"{USERS} simulated users (`population_events({USERS}, seed={SEED}, "
        f"now={LOOKED:%Y-%m-%d})`: "
        f"the four personas of `creditline simulate`, {ex.events:,} events) make "
        f"{REQUESTS_PER_USER} loan requests each at seeded instants between "
        f"{_day(report.window.start)} and {_day(LOOKED)} "
        f"(`requests_between`, {ex.requests:,} requests). The candidate `{CANDIDATE_VERSION}.yaml`"
        f" is the shipped default policy (`{ex.live.base.version}`) with `version: "
        f"{CANDIDATE_VERSION}` and `status.thresholds.reopen_at: {REOPEN_AT}` instead of "
        f"{default}: a closed line reopens {default - REOPEN_AT} points lower. On "
        f"{_day(TRIED)}:",
        "",
        "```console",
        f"$ creditline what-if --policy {CANDIDATE_VERSION}.yaml --since {WHAT_IF_DAYS}d",
        render_summary(report),
        "```",
        "",
        "Outcomes, live → candidate:",
        "",
        outcomes_markdown(report),
        "By segment, before → after:",
        "",
        segments_markdown(report),
        _flips_text(ex),
        "",
        f"Same outcome, another approved amount: {report.amount_changed}. Decisions "
        f"overriding the displayed status: {report.overrides[0]} → {report.overrides[1]}. "
        "Lines that would end the window in "
        "another status: "
        + (
            ", ".join(f"{n} {a} → {b}" for (a, b), n in changes.items())
            if changes
            else f"none of the {report.lines}"
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def persona_of_user(user: str) -> str:
    """The persona of a simulated user (by the index in its id)."""
    from streams.devtools.simulation import persona_of

    return persona_of(int(user.rsplit("-", 1)[1])).value


def _flips_text(ex: Example) -> str:
    kinds = Counter(flip_kind(p) for p in ex.pairs if p.flipped)
    personas = Counter(persona_of_user(p.user_id) for p in ex.pairs if p.flipped)
    by_persona = ", ".join(f"`{name}` {n}" for name, n in sorted(personas.items()))
    close_below = ex.live.base.status.thresholds.close_below
    default = ex.live.base.status.thresholds.reopen_at
    texts = {
        REOPENED: f"closed lines with a score from {REOPEN_AT} to {default - 1}, which the "
        "lower threshold reopens",
        HYSTERESIS: "lines the candidate would have reopened earlier (the day their score "
        f"reached {REOPEN_AT}) and kept open since by hysteresis, their score now between "
        f"{close_below} and {REOPEN_AT - 1}: the default never reopened them",
        LIMIT: "open lines whose limit is larger",
        OTHER: "other changes",
    }
    parts = [f"{kinds[k]} {texts[k]}" for k in (REOPENED, HYSTERESIS, LIMIT, OTHER) if kinds[k]]
    return f"Of the {ex.what_if.flipped} flips ({by_persona}): " + "; ".join(parts) + "."


def guard_markdown() -> str:
    """What ``policy apply`` without ``--shadow`` prints and asks on that day."""
    from streams.cli.whatif import guard_question

    ex = example()
    lines = [
        "```console",
        f'$ creditline policy apply {CANDIDATE_VERSION}.yaml --by alice --comment "reopen at '
        f'{REOPEN_AT}"',
        render_summary(ex.guard),
        f"{guard_question(f'policy {CANDIDATE_VERSION}')} [y/N]:",
        "```",
    ]
    return "\n".join(lines) + "\n"


def shadow_markdown() -> str:
    """``shadow status`` a week later, and the shadow's answers beside the week's what-if."""
    from streams.cli.shadow import comparison_line, describe

    ex = example()
    status = ex.shadow
    candidate = Candidate(ex.candidate, None, TRIED, "alice", "reopen at 575")
    rows = [
        f"| {live} → {shadow}{' ≠' if live != shadow else ''} | {n:,} |"
        for (live, shadow), n in sorted(status.outcomes.items())
    ]
    week = ex.cross_check
    flips = ", ".join(
        f"{a.value} → {b.value} {n}" for (a, b), n in week.matrix.items() if a is not b and n
    )
    lines = [
        f"On {_day(LOOKED)}:",
        "",
        "```console",
        "$ creditline shadow status",
        describe(candidate),
        "```",
        "",
        f"| live → candidate ({status.pairs:,} requests compared) | requests |",
        "|---|---|",
        *rows,
        "",
        comparison_line(status),
        "",
        f"Beside it, `creditline what-if --policy {CANDIDATE_VERSION}.yaml --from "
        f"{TRIED.isoformat()} --to {LOOKED.isoformat()}` re-answers the same "
        f"{week.requests:,} requests: {week.flipped} flip ({flips or 'none'}). "
        f"The candidate's answers in shadow have the what-if candidate side's outcome and "
        f"approved amount for **{ex.same_answer:,} of the {week.requests:,}**, and are equal "
        f"in every field for {ex.same_decision:,}; the others differ only in "
        + ", ".join(f"`{name}` ({n})" for name, n in sorted(ex.differing_fields.items()))
        + ".",
        "",
        _promoted_text(ex),
    ]
    return "\n".join(lines) + "\n"


#: The sections of docs/policy.md this module writes.
STRATEGY_SECTIONS = {
    "strategy-what-if": what_if_markdown,
    "strategy-guard": guard_markdown,
    "strategy-shadow": shadow_markdown,
}


#: Why a what-if flip is not one when the candidate is promoted at the request's instant.
SWITCH_REVIEWS = "switch reviews"


def unmatched_kind(pair: Pair, promoted: LoanDecision) -> str:
    """A what-if flip that a switch does not make: a line kept open by hysteresis
    (``hysteresis``), or a standing score of at least ``reopen_at`` from the last daily review
    that the switch — a review at the instant — finds below it (``switch reviews``)."""
    kind = flip_kind(pair)
    if kind == HYSTERESIS:
        return HYSTERESIS
    standing, fresh = pair.live.score, promoted.score
    if standing is not None and fresh is not None and fresh < REOPEN_AT <= standing:
        return SWITCH_REVIEWS
    return OTHER


def _promoted_text(ex: Example) -> str:
    """The what-if's window answered as a shadow would have answered it."""
    report = ex.what_if
    switched = {
        p.request_id for p in ex.pairs if ex.promoted[p.request_id].outcome != p.live.outcome
    }
    kinds = Counter(
        unmatched_kind(p, ex.promoted[p.request_id])
        for p in ex.pairs
        if p.flipped and p.request_id not in switched
    )
    only = sum(1 for p in ex.pairs if p.request_id in switched and not p.flipped)
    texts = {
        HYSTERESIS: "are the lines the what-if keeps open by hysteresis: their score at the "
        f"switch is below {REOPEN_AT}, they stay closed",
        SWITCH_REVIEWS: f"have a standing score of {REOPEN_AT} or more from the last daily "
        f"review but a score below {REOPEN_AT} at the request's instant (time alone moved it; "
        "the next daily review would have shown it): the switch is a review, and reviews them "
        "closed",
        OTHER: "differ otherwise",
    }
    parts = [f"{kinds[k]} {texts[k]}" for k in (HYSTERESIS, SWITCH_REVIEWS, OTHER) if kinds[k]]
    return (
        f"Over the what-if's {WHAT_IF_DAYS} days, answered as the shadow answers them (the "
        f"candidate promoted at each request's instant), the candidate flips {len(switched)} "
        f"of the {report.requests} requests, the what-if {report.flipped}."
        + (
            " Of the what-if's flips that a switch does not make, " + "; ".join(parts) + "."
            if parts
            else ""
        )
        + (f" {only} flip only at a switch." if only else "")
    )
