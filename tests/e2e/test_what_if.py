"""``creditline what-if`` against a real worker: the live configuration against itself flips
nothing and its live side is what the worker published; a lower reopening threshold flips
exactly the requests a direct computation says it should, from the command line, with its
report files."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import yaml

from schemas.models import DisplayedStatus, InputEvent, LoanRequest
from streams.core.labels import features_at
from streams.core.policy import load_default_policy
from streams.core.scorecard import load_default_scorecard
from streams.core.whatif import Window
from streams.runtime.jobs import run_what_if
from streams.settings import Settings
from tests.builders import asset, repayment
from tests.e2e.conftest import creditline, running_worker
from tests.histories import crossing_population, request_for
from tests.support import decisions_for, publish, store_for, wait_applied

POLICY = load_default_policy()
CARD = load_default_scorecard()
#: Inside the default policy's Double 11 2026 promotion (2026-11-01 to 11-12, +08:00).
DOUBLE_11 = datetime(2026, 11, 1, tzinfo=UTC)


def one_review_user(
    user: str, at: datetime, income: int, deposit: int, *, repayments: int = 2
) -> list[InputEvent]:
    """Every event at one instant: verified income and deposit, on-time repayments of a small
    debt. Two repayments keep the decayed on-time count above 1 for months (not thin_file),
    nothing is late or missed (not high_risk) and the debt is tiny (not high_debt_to_income):
    the user is ``standard``, scored once, at ``at``."""
    events: list[InputEvent] = []
    for kind, value in (("income", income), ("deposit", deposit)):
        if value:
            events.append(
                asset(
                    event_id=f"{user}-{kind}",
                    user_id=user,
                    occurred_at=at.isoformat(),
                    asset_type=kind,
                    value=f"{value}.00",
                    verified=True,
                )
            )
    for i in range(repayments):
        events.append(
            repayment(
                event_id=f"{user}-r{i}",
                user_id=user,
                occurred_at=at.isoformat(),
                loan_id=f"{user}-loan",
                amount_due="100.00",
                amount_paid="100.00",
                days_past_due=0,
                outstanding_balance="100.00",
            )
        )
    return events


def ask(user: str, rid: str, at: datetime, amount: str = "100.00") -> LoanRequest:
    return LoanRequest(
        request_id=rid,
        user_id=user,
        requested_at=at,
        amount=Decimal(amount),
        term_months=12,
        displayed_status=DisplayedStatus.CLOSED,
    )


async def publish_and_apply(settings: Settings, histories: dict[str, list[InputEvent]]) -> None:
    await publish(settings, [e for events in histories.values() for e in events])
    for user, events in histories.items():
        await wait_applied(settings, user, len(events), timeout=120)


async def test_the_live_configuration_against_itself_flips_nothing_and_is_what_was_published(
    worker_settings: Settings, tmp_path: Path
) -> None:
    # Requests judged in the past (the promotion, months ago) need a worker that trusts
    # request times that far back, as in test_scorecards.py.
    settings = worker_settings.model_copy(update={"request_time_tolerance_seconds": 400 * 86400})
    async with running_worker(settings, tmp_path / "worker.log"):
        now = datetime.now(UTC)
        rng = random.Random(16)
        # Histories that cross the thresholds both ways and freeze (35 days past due) ...
        histories = crossing_population(16, 3, now - timedelta(hours=2), prefix="wi")
        # ... and a standard user at 578, closed, whom the promotion opens for a decision.
        histories["wi-promo"] = one_review_user(
            "wi-promo", datetime(2026, 10, 20, 9, tzinfo=UTC), 6000, 15000
        )
        await publish_and_apply(settings, histories)
        requests = [
            ask("wi-promo", "wi-promo:double-11", datetime(2026, 11, 5, 12, tzinfo=UTC), "500.00")
        ]
        for user in sorted(histories):
            times = [
                DOUBLE_11 + timedelta(hours=rng.uniform(0, 24 * 10.5)),  # in the promotion
                now - timedelta(days=rng.uniform(20, 250)),
                now - timedelta(hours=1),
            ]
            requests += [request_for(user, t, rng, i) for i, t in enumerate(times)]
        published = await decisions_for(settings, requests, timeout=120)
        window = Window(now - timedelta(days=300), now + timedelta(minutes=1))
        report = await run_what_if(settings, window, candidate_policy=POLICY)
        store = store_for(settings)
        try:  # each user's status history, as the worker keeps it
            changes = {
                u: (await store.read_user(u)).checkpoint.trajectory.changes for u in histories
            }
        finally:
            await store.close()
    # The history has what makes the machine path dependent, and the promotion applied.
    codes = Counter(r.code for d in published.values() for r in d.reasons)
    assert codes["FROZEN_PAST_DUE"] > 0 and codes["PROMOTION_APPLIED"] > 0, codes
    assert sum(len(c) >= 3 for c in changes.values()) > 0, changes  # several status changes
    assert all(d.evaluated_at is not None for d in published.values())
    # Against itself: nothing flips, nothing moves.
    assert report.requests == len(requests)
    assert report.flipped == 0 and report.amount_changed == 0
    assert report.status_changes == {}
    assert report.totals[0] == report.totals[1]
    assert all(before == after for before, after in report.by_segment.values())
    assert report.overrides[0] == report.overrides[1]
    # The live side is what the worker published, field by field.
    assert report.published.found == len(requests)
    assert report.published.matching == len(requests), report.published


def _candidate(tmp_path: Path, reopen_at: int) -> Path:
    doc = POLICY.model_dump(mode="json", exclude_none=True)
    doc["version"] = "lower-reopen-1"
    doc["status"]["thresholds"] = {"close_below": 560, "reopen_at": reopen_at}
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


async def test_a_lower_reopening_threshold_flips_exactly_the_requests_it_should(
    worker_settings: Settings, tmp_path: Path
) -> None:
    """Each user's events are at one instant, so the line's status comes from one review: a
    first status is provisional, so the line opens there iff the score ≥ ``reopen_at`` of the
    user's segment (``standard``: 590 live, 564 in the candidate; ``close_below`` 560 in both)
    and nothing after it changes the score before the request (no event; the decayed on-time
    count stays in its bin). The request is for 100.00, below any open line's limit (the
    minimum is 1,000): approved iff the line is open, else declined. So a request flips
    exactly when 564 ≤ score < 590, declined → approved, where the score is the card applied
    directly to the features at that instant — computed here without the what-if code."""
    async with running_worker(worker_settings, tmp_path / "worker.log"):
        now = datetime.now(UTC)
        t0 = now - timedelta(hours=2)
        profiles = [  # (verified monthly income, verified deposit), spread around the band
            (5000, 7000),
            (6000, 0),
            (5000, 15000),
            (5000, 30000),
            (8000, 0),
            (8000, 7000),
            (6000, 15000),
            (6000, 30000),
            (8000, 15000),
            (5000, 50000),
            (8000, 30000),
            (12000, 15000),
            (8000, 50000),
        ]
        histories = {
            f"lr-{i:02d}": one_review_user(f"lr-{i:02d}", t0, income, deposit)
            for i, (income, deposit) in enumerate(profiles)
        }
        await publish_and_apply(worker_settings, histories)
        requests = [ask(user, f"{user}:q", now - timedelta(seconds=5)) for user in histories]
        published = await decisions_for(worker_settings, requests)
        candidate = _candidate(tmp_path, reopen_at=564)
        result = creditline(
            worker_settings, "what-if", "--policy", str(candidate), "--since", "1d", "--json"
        )
        report_dir = tmp_path / "report"
        with_files = creditline(
            worker_settings,
            "what-if",
            "--policy",
            str(candidate),
            "--since",
            "1d",
            "--report",
            str(report_dir),
        )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    # The direct computation: the card over the features at the one review instant.
    scores = {}
    for user, events in histories.items():
        features = features_at(events, t0)
        assert features is not None
        scores[user] = CARD.evaluate(features).score
    flips = {f"{user}:q" for user, score in scores.items() if 564 <= score < 590}
    stays_closed = {user for user, score in scores.items() if score < 564}
    stays_open = {user for user, score in scores.items() if score >= 590}
    # The population covers every band, and the boundary: a score of exactly 564 flips.
    assert flips and stays_closed and stays_open and 564 in scores.values(), scores
    for user, score in scores.items():  # the worker scored and segmented them so too
        decision = published[f"{user}:q"]
        assert (decision.score, decision.segment) == (score, "standard"), user
        assert decision.outcome.value == ("approved" if score >= 590 else "declined")
    assert {f["request_id"] for f in doc["flipped"]} == flips
    assert doc["counts"]["requests"] == len(requests) and doc["counts"]["flipped"] == len(flips)
    matrix = doc["matrix"]
    assert matrix["declined"]["approved"] == len(flips)
    off_diagonal = sum(n for a, row in matrix.items() for b, n in row.items() if a != b)
    assert off_diagonal == len(flips)
    assert matrix["approved"]["approved"] == len(stays_open)
    assert matrix["declined"]["declined"] == len(stays_closed)
    assert doc["status_changes"]["by_change"] == [
        {"from": "closed", "to": "open", "users": len(flips)}
    ]
    standard = doc["by_segment"]["standard"]
    assert standard["after"]["approvals"] - standard["before"]["approvals"] == len(flips)
    added = Decimal(standard["after"]["approved_amount"]) - Decimal(
        standard["before"]["approved_amount"]
    )
    assert added == Decimal("100.00") * len(flips)
    assert Decimal(standard["after"]["expected_loss"]) > Decimal(
        standard["before"]["expected_loss"]
    )
    assert doc["counts"]["published"]["matching"] == len(requests)
    assert doc["candidate"].startswith("policy lower-reopen-1")
    # --report writes the three files; the JSON file is the same object.
    assert with_files.returncode == 0, with_files.stderr
    assert {p.name for p in report_dir.iterdir()} == {"report.json", "report.md", "chart.png"}
    written = json.loads((report_dir / "report.json").read_text())
    assert written["flipped"] == doc["flipped"] and written["matrix"] == doc["matrix"]
    assert (report_dir / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert "declined" in (report_dir / "report.md").read_text()
