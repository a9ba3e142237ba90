"""What-if: the report over hand-made pairs (matrix, segments, expected loss, status changes,
forms), the candidate's definition, the per-user comparison against the explain path (each
request from scratch), and the service's window over logged requests."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from schemas.models import (
    DisplayedStatus,
    EffectiveStatus,
    InputEvent,
    LoanDecision,
    LoanRequest,
    Outcome,
    Reason,
)
from streams.core.answer import answer
from streams.core.decoding import DecodeLimits
from streams.core.policy import Policy, load_default_policy, parse_policy
from streams.core.scorecard import ScorecardTimeline, load_default_scorecard, load_expert_scorecard
from streams.core.timeline import START, PolicyTimeline, advance, canonical
from streams.core.whatif import (
    OUTCOMES,
    LineEnd,
    LoggedRequest,
    Pair,
    Window,
    candidate_timeline,
    compare_user,
    logged_request,
)
from streams.core.whatif_render import render_summary, report_json, report_markdown
from streams.core.whatif_report import UNSCORED, build_report, figures
from streams.devtools.simulation import to_record
from streams.ports import InboundRecord
from streams.service.whatif import what_if
from streams.settings import Settings
from streams.topics import Topics
from tests.histories import crossing_population, request_for
from tests.unit.fakes import FakeReader, record_of

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
HORIZON = timedelta(days=5 * 365)


def decision(
    rid: str,
    outcome: Outcome,
    amount: str = "0.00",
    *,
    segment: str | None = "standard",
    pd: float | None = 0.05,
    overrides: bool = False,
    user: str = "u-1",
    codes: tuple[str, ...] = (),
) -> LoanDecision:
    """A decision with only what the report reads set meaningfully."""
    return LoanDecision(
        request_id=rid,
        user_id=user,
        decided_at=T0,
        outcome=outcome,
        requested_amount=Decimal("1000.00"),
        approved_amount=Decimal(amount),
        credit_limit=Decimal("5000.00"),
        available_limit=Decimal("5000.00"),
        score=600,
        score_as_of=T0 if segment is not None else None,
        effective_status=EffectiveStatus.OPEN,
        displayed_status=DisplayedStatus.OPEN,
        overrides_displayed_status=overrides,
        reasons=[Reason(code=c, text=c, texts={"en": c, "zh": c}) for c in codes],
        policy_version="p",
        scorer_version="s",
        evaluated_at=T0,
        segment=segment,
        pd=pd,
    )


def pair(before: LoanDecision, after: LoanDecision, published: LoanDecision | None = None) -> Pair:
    return Pair(before.request_id, before.user_id, before, after, published)


# ---- the report ------------------------------------------------------------------------------
def test_every_outcome_pair_lands_in_its_cell_of_the_matrix() -> None:
    pairs = []
    for i, a in enumerate(OUTCOMES):
        for j, b in enumerate(OUTCOMES):
            for k in range(i * 4 + j + 1):  # a distinct count per cell
                rid = f"q-{a.value}-{b.value}-{k}"
                pairs.append(pair(decision(rid, a), decision(rid, b)))
    report = build_report(pairs, [], WINDOW, "live", "candidate")
    for i, a in enumerate(OUTCOMES):
        for j, b in enumerate(OUTCOMES):
            assert report.matrix[a, b] == i * 4 + j + 1
    assert report.requests == len(pairs) == sum(report.matrix.values())
    off_diagonal = sum(i * 4 + j + 1 for i in range(4) for j in range(4) if i != j)
    assert report.flipped == off_diagonal
    assert len(report.flips) == min(off_diagonal, report.flipped_limit)
    doc = report_json(report)
    assert doc["matrix"]["declined"]["approved"] == 2 * 4 + 0 + 1
    assert set(doc["matrix"]) == {o.value for o in OUTCOMES}
    assert doc["counts"]["flipped"] == off_diagonal


def test_segments_expected_loss_and_means_before_and_after() -> None:
    pairs = [
        # approved 1000 at PD 5 % → 50.00 expected loss; after: declined.
        pair(
            decision("q1", Outcome.APPROVED, "1000.00", pd=0.05),
            decision("q1", Outcome.DECLINED, pd=0.05),
        ),
        # partially approved 333.33 at PD 12.3457 % → 41.15...; after: the same in thin_file.
        pair(
            decision("q2", Outcome.PARTIALLY_APPROVED, "333.33", pd=0.123457),
            decision("q2", Outcome.PARTIALLY_APPROVED, "333.33", segment="thin_file", pd=0.2),
        ),
        # declined before, approved 200 after at PD 1 %.
        pair(
            decision("q3", Outcome.DECLINED, segment="high_risk", pd=0.3),
            decision("q3", Outcome.APPROVED, "200.00", segment="high_risk", pd=0.01),
        ),
        # no state on either side: unscored, never an approval.
        pair(
            decision("q4", Outcome.REVIEW, segment=None, pd=None),
            decision("q4", Outcome.REVIEW, segment=None, pd=None),
        ),
    ]
    report = build_report(pairs, [], WINDOW, "live", "candidate")
    standard, standard_after = report.by_segment["standard"]
    assert standard.requests == 2 and standard.approvals == 2
    assert standard.approved_amount == Decimal("1333.33")
    exact = Decimal("0.05") * Decimal("1000.00") + Decimal("0.123457") * Decimal("333.33")
    assert standard.expected_loss == exact.quantize(Decimal("0.01"))  # 91.15
    assert standard.expected_loss == Decimal("91.15")
    assert standard.mean_pd == 0.086728  # 0.0867285 to 6 digits, half to even
    assert standard.mean_expected_loss == Decimal("45.58")  # 45.575, half to even
    # After: q1 declined in standard, q2 moved to thin_file.
    assert (standard_after.requests, standard_after.approvals) == (1, 0)
    assert standard_after.expected_loss == Decimal("0.00")
    assert standard_after.mean_pd is None and standard_after.mean_expected_loss is None
    thin_before, thin_after = report.by_segment["thin_file"]
    assert thin_before.requests == 0
    assert thin_after.approved_amount == Decimal("333.33")
    assert thin_after.expected_loss == Decimal("66.67")  # 0.2 × 333.33 = 66.666
    risky_before, risky_after = report.by_segment["high_risk"]
    assert (risky_before.approvals, risky_after.approvals) == (0, 1)
    assert risky_after.expected_loss == Decimal("2.00")
    assert report.by_segment[UNSCORED][0].requests == 1
    before, after = report.totals
    assert (before.approvals, after.approvals) == (2, 2)
    assert before.approved_amount == Decimal("1333.33")
    assert after.approved_amount == Decimal("533.33")
    assert after.expected_loss == Decimal("68.67")  # 66.666 + 2 = 68.666
    # JSON: every amount a decimal string, never a float.
    doc = report_json(report)
    figures_json = [
        *(s[side] for s in doc["by_segment"].values() for side in ("before", "after")),
        doc["totals"]["before"],
        doc["totals"]["after"],
    ]
    for f in figures_json:
        for key in ("approved_amount", "expected_loss"):
            assert isinstance(f[key], str)
            Decimal(f[key])
        assert f["mean_expected_loss"] is None or isinstance(f["mean_expected_loss"], str)
    assert doc["by_segment"]["standard"]["before"]["expected_loss"] == "91.15"
    assert json.loads(json.dumps(doc)) == doc


def test_an_approval_without_a_pd_counts_its_amount_but_no_expected_loss() -> None:
    found = figures(
        [
            decision("a", Outcome.APPROVED, "100.00", pd=None),
            decision("b", Outcome.APPROVED, "100.00", pd=0.5),
        ]
    )
    assert found.approved_amount == Decimal("200.00")
    assert found.mean_pd == 0.5
    assert found.expected_loss == Decimal("50.00")
    assert found.mean_expected_loss == Decimal("25.00")
    empty = figures([])
    assert (empty.requests, empty.approvals, empty.mean_pd) == (0, 0, None)


def test_overrides_amount_changes_and_flips_listed_up_to_the_limit() -> None:
    pairs = [
        pair(
            decision("q-a", Outcome.APPROVED, "500.00", overrides=True),
            decision("q-a", Outcome.PARTIALLY_APPROVED, "300.00"),
        ),
        pair(
            decision("q-b", Outcome.PARTIALLY_APPROVED, "300.00"),
            decision("q-b", Outcome.PARTIALLY_APPROVED, "400.00", overrides=True),
        ),
        pair(
            decision("q-c", Outcome.DECLINED, overrides=True),
            decision("q-c", Outcome.APPROVED, "100.00", overrides=True),
        ),
        pair(
            decision("q-d", Outcome.APPROVED, "100.00"), decision("q-d", Outcome.APPROVED, "100.00")
        ),
    ]
    report = build_report(pairs, [], WINDOW, "live", "candidate", flipped_limit=1)
    assert report.overrides == (2, 2)
    assert report.amount_changed == 1  # q-b: same outcome, another amount
    assert report.flipped == 2
    assert [f.request_id for f in report.flips] == ["q-a"]
    doc = report_json(report)
    assert doc["counts"]["unchanged"] == 1
    assert doc["flipped"] == [
        {
            "request_id": "q-a",
            "user_id": "u-1",
            "from": "approved",
            "to": "partially_approved",
            "approved_amount_before": "500.00",
            "approved_amount_after": "300.00",
            "evaluated_at": T0.isoformat(),
        }
    ]
    assert doc["flipped_limit"] == 1


def test_status_changes_at_the_end_of_the_window_are_counted_by_from_and_to() -> None:
    open_, closed, frozen = EffectiveStatus.OPEN, EffectiveStatus.CLOSED, EffectiveStatus.FROZEN
    ends = [
        LineEnd("u1", closed, open_),
        LineEnd("u2", closed, open_),
        LineEnd("u3", open_, closed),
        LineEnd("u4", frozen, frozen),
        LineEnd("u5", None, None),
        LineEnd("u6", None, open_),
        LineEnd("u7", open_, open_),
    ]
    report = build_report([], ends, WINDOW, "live", "candidate")
    assert report.status_changes == {
        ("open", "closed"): 1,
        ("closed", "open"): 2,
        ("none", "open"): 1,
    }
    assert list(report.status_changes) == [("open", "closed"), ("closed", "open"), ("none", "open")]
    assert (report.lines, report.lines_changed) == (7, 4)
    doc = report_json(report)["status_changes"]
    assert doc["users"] == 7 and doc["changed"] == 4
    assert {"from": "closed", "to": "open", "users": 2} in doc["by_change"]


def test_the_live_side_is_checked_against_the_published_decisions() -> None:
    same = decision("q1", Outcome.APPROVED, "100.00")
    other = decision("q2", Outcome.APPROVED, "100.00")
    environmental = decision("q3", Outcome.REVIEW, segment=None, codes=("SCORE_UNAVAILABLE",))
    pairs = [
        pair(same, same, published=same),
        pair(other, other, published=replace_outcome(other, Outcome.DECLINED)),
        pair(decision("q3", Outcome.DECLINED), decision("q3", Outcome.DECLINED), environmental),
        pair(decision("q4", Outcome.DECLINED), decision("q4", Outcome.DECLINED)),
    ]
    checked = build_report(pairs, [], WINDOW, "live", "candidate").published
    assert (checked.found, checked.matching, checked.differing, checked.environmental) == (
        3,
        1,
        1,
        1,
    )
    assert checked.differing_ids == ("q2",)


def replace_outcome(d: LoanDecision, outcome: Outcome) -> LoanDecision:
    return d.model_copy(update={"outcome": outcome})


def test_the_forms_say_the_same_figures() -> None:
    pairs = [
        pair(
            decision("q1", Outcome.DECLINED, segment="thin_file"),
            decision("q1", Outcome.APPROVED, "1200.00", segment="thin_file", pd=0.1),
        )
    ]
    ends = [LineEnd("u-1", EffectiveStatus.CLOSED, EffectiveStatus.OPEN)]
    report = build_report(pairs, ends, WINDOW, "the live history", "policy cand-1")
    summary = render_summary(report)
    assert "over the 30 days to 2026-12-01 00:00 UTC" in summary
    assert "1 requests of 1 users" in summary
    assert "declined→approved 1" in summary
    assert "expected loss 0.00 → 120.00" in summary
    assert "closed→open 1" in summary
    page = report_markdown(report)
    assert "| declined | 0 | 0 | 0 | 0 |" not in page  # the row has the flip
    assert "| declined | 1 | 0 | 0 | 0 |" in page
    assert "q1" in page and "policy cand-1" in page
    empty = build_report([], [], WINDOW, "live", "candidate")
    assert "nothing to compare" in render_summary(empty)


# ---- the candidate ---------------------------------------------------------------------------
def test_the_candidate_replaces_only_what_it_names_for_all_time() -> None:
    base = load_default_policy()
    later = base.model_copy(update={"version": "later-1"})
    fitted, expert = load_default_scorecard(), load_expert_scorecard()
    at = datetime(2026, 6, 1, tzinfo=UTC)
    live = PolicyTimeline.of(base, [(at, later)], ScorecardTimeline.of(fitted, [(at, expert)]))
    candidate_policy = base.model_copy(update={"version": "cand-1"})
    only_policy = candidate_timeline(live, candidate_policy)
    assert only_policy.at(at - timedelta(days=1)).version == "cand-1"
    assert only_policy.at(at + timedelta(days=1)).version == "cand-1"
    assert only_policy.cards == live.cards  # the live card history stays
    only_card = candidate_timeline(live, card=expert)
    assert only_card.versions == live.versions  # the live policy history stays
    assert only_card.card_at(at - timedelta(days=1)) is expert
    both = candidate_timeline(live, candidate_policy, fitted)
    assert both.effective_instants() == ()
    with pytest.raises(ValueError, match="candidate"):
        candidate_timeline(live)


# ---- one user, both sides --------------------------------------------------------------------
def _explained(
    request: LoggedRequest, events: list[InputEvent], timelines: PolicyTimeline
) -> LoanDecision:
    """The explain path: the machine from scratch over the events up to the instant."""
    if request.at is None:
        return answer(request.request, START, timelines, None, request.decided_at)
    before = canonical([e for e in events if e.occurred_at <= request.at])
    checkpoint = advance(before, timelines, request.at, HORIZON)
    return answer(request.request, checkpoint, timelines, request.at, request.decided_at)


def stricter() -> Policy:
    """The default policy with higher thresholds, no segments, exceptions or promotions."""
    doc = load_default_policy().model_dump(mode="json", exclude_none=True)
    doc.update(version="stricter-1", segments=[], exceptions=[], promotions=[])
    doc["status"]["thresholds"] = {"close_below": 620, "reopen_at": 650}
    return parse_policy(json.dumps(doc))


def _requests(user: str, end: datetime, rng: random.Random) -> Iterator[LoggedRequest]:
    tolerance = timedelta(days=400)
    for sequence in range(6):
        at = end - timedelta(days=rng.uniform(0, 300))
        request = request_for(user, at, rng, sequence)
        yield logged_request(request, at + timedelta(seconds=1), tolerance)
    late = request_for(user, end - timedelta(days=3), rng, 99)  # untrusted: 3 days before arrival
    yield logged_request(late, end, timedelta(minutes=5))


def test_each_side_answers_every_request_as_the_explain_path_does() -> None:
    """The machine carried from request to request gives each request what the machine run
    from scratch up to its instant gives (so resuming is exact), on both sides, and the same
    configuration on both sides flips nothing."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    rng = random.Random(11)
    live = PolicyTimeline(load_default_policy())
    candidate = candidate_timeline(live, stricter())
    flips = 0
    for user, events in crossing_population(12, 5, end, prefix="w").items():
        logged = list(_requests(user, end, rng))
        pairs, line_end = compare_user(logged, events, live, candidate, HORIZON, end)
        same, _ = compare_user(logged, events, live, live, HORIZON, end)
        assert all(not p.flipped and p.live == p.candidate for p in same)
        assert {p.request_id for p in pairs} == {r.request.request_id for r in logged}
        by_id = {r.request.request_id: r for r in logged}
        for p in pairs:
            assert p.live == _explained(by_id[p.request_id], events, live)
            assert p.candidate == _explained(by_id[p.request_id], events, candidate)
            flips += p.flipped
        for side, timelines in ((line_end.live, live), (line_end.candidate, candidate)):
            line = advance(canonical(events), timelines, end, HORIZON).trajectory.line
            assert side == (line.status if line is not None else None)
    assert flips > 0  # the stricter policy does change something


# ---- the service over logged records ----------------------------------------------------------
def _record(topic: str, value: Any, offset: int, arrival: datetime, key: str) -> InboundRecord:
    return InboundRecord(
        topic=topic,
        partition=0,
        offset=offset,
        key=key.encode(),
        value=value.model_dump_json().encode(),
        timestamp=arrival.timestamp(),
        log_append_time=True,
    )


async def test_requests_are_in_the_window_by_the_instant_the_worker_judged_them_at() -> None:
    topics = Topics.from_settings(Settings())
    end = datetime(2026, 11, 30, tzinfo=UTC)
    events = crossing_population(1, 3, end, prefix="s")["s-00000"]
    records = [record_of(topics.topic_for(to_record(e).kind), e, i) for i, e in enumerate(events)]

    def ask(rid: str, requested_at: datetime) -> LoanRequest:
        return LoanRequest(
            request_id=rid,
            user_id="s-00000",
            requested_at=requested_at,
            amount=Decimal("100.00"),
            term_months=12,
            displayed_status=DisplayedStatus.UNKNOWN,
        )

    start = datetime(2026, 11, 10, tzinfo=UTC)
    window = Window(start, end)
    asks = [
        # requested just before the window, arrived inside it: judged before it → out.
        (ask("q-before", start - timedelta(seconds=30)), start + timedelta(seconds=30)),
        (ask("q-inside", start + timedelta(days=1)), start + timedelta(days=1, seconds=2)),
        # dated in the future: judged at its arrival, inside.
        (ask("q-future", end + timedelta(days=5)), end - timedelta(hours=1)),
        # backdated beyond the tolerance: untrusted, placed by its arrival (inside).
        (ask("q-untrusted", start - timedelta(days=20)), start + timedelta(days=2)),
        # arrived after the window.
        (ask("q-after", end), end + timedelta(seconds=1)),
    ]
    offset = len(records)
    for request, arrival in asks:
        records.append(_record(topics.loan_requests, request, offset, arrival, request.user_id))
        offset += 1
    # A second record of q-before inside the window does not count: the first one does.
    again = ask("q-before", start + timedelta(days=3))
    records.append(_record(topics.loan_requests, again, offset, start + timedelta(days=3), "s"))
    live = PolicyTimeline(load_default_policy())
    seen: list[tuple[str, int, int | None]] = []
    result = await what_if(
        FakeReader(records),
        live,
        live,
        topics,
        DecodeLimits(horizon=HORIZON),
        window,
        timedelta(minutes=5),
        on_progress=lambda phase, done, total: seen.append((phase, done, total)),
    )
    assert sorted(p.request_id for p in result.pairs) == ["q-future", "q-inside", "q-untrusted"]
    by_id = {p.request_id: p for p in result.pairs}
    assert by_id["q-future"].live.evaluated_at == end - timedelta(hours=1)
    assert by_id["q-untrusted"].live.evaluated_at is None
    assert by_id["q-untrusted"].live.reasons[0].code == "REQUEST_TIME_UNTRUSTED"
    assert [e.user_id for e in result.ends] == ["s-00000"]
    assert ("answering", 3, 3) in seen
    assert seen[-1] == ("answering", 3, 3)
