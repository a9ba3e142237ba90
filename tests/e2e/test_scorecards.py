"""The scorecard in the running system: a card applied while the worker runs scores from its
instant on (decisions name it, with its PD); an invalid one changes nothing; the stability
gauges follow the card in use; and labelled histories come back out of the topics with
nothing after an observation point in its features."""

from __future__ import annotations

import csv
import functools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from schemas.models import DisplayedStatus, InputEvent, LoanRequest
from streams.core.labels import features_at
from streams.core.scorecard import (
    load_default_scorecard,
    load_expert_scorecard,
    scorecard_yaml,
)
from streams.modeling.dataset import read_events, read_labels
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import asset, repayment
from tests.e2e.conftest import WorkerProcess, creditline, running_worker
from tests.support import decisions_for, produce, publish, wait_applied, wait_for

FITTED = load_default_scorecard()
EXPERT = load_expert_scorecard()
creditline_slow = functools.partial(creditline, timeout=120)


def loan(user: str, rid: str, at: datetime, amount: str = "500.00") -> LoanRequest:
    return LoanRequest(
        request_id=rid,
        user_id=user,
        requested_at=at,
        amount=Decimal(amount),
        term_months=12,
        displayed_status=DisplayedStatus.CLOSED,
    )


def history(user: str, now: datetime, missed_at_days: int | None = None) -> list[InputEvent]:
    """A year of repayments with verified income and deposit (one missed when asked)."""
    events: list[InputEvent] = [
        asset(
            event_id=f"{user}-{kind}",
            user_id=user,
            occurred_at=(now - timedelta(days=400)).isoformat(),
            asset_type=kind,
            value="15000.00",
            verified=True,
        )
        for kind in ("income", "deposit")
    ]
    for i in range(13):
        days = 30 * i + 2
        missed = missed_at_days is not None and days == missed_at_days
        events.append(
            repayment(
                event_id=f"{user}-r{i}",
                user_id=user,
                occurred_at=(now - timedelta(days=days)).isoformat(),
                amount_paid="0.00" if missed else "100.00",
                days_past_due=95 if missed else 0,
            )
        )
    return events


async def test_a_card_applied_at_run_time_scores_from_its_instant_and_is_monitored(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = worker.settings
    now = datetime.now(UTC)
    users = [f"u-card-{i}" for i in range(6)]
    events = [e for user in users for e in history(user, now)]
    await publish(settings, events)
    for user in users:
        await wait_applied(settings, user, 15)
    before = await decisions_for(
        settings, [loan(user, f"{user}-q1", datetime.now(UTC)) for user in users]
    )
    assert {d.scorecard_version for d in before.values()} == {FITTED.version}
    for d in before.values():
        assert d.pd == round(FITTED.pd_of(d.score), 6) and d.pd_horizon_months == 12
        assert d.segment == "standard"

    async def monitored(version: str) -> bool:
        return worker.counter("creditline_scorecard_window_scorings", version=version) >= 1

    await wait_for(lambda: monitored(FITTED.version), message="PSI gauges of the shipped card")
    assert worker.counter("creditline_scorecard_info", version=FITTED.version) == 1.0
    assert (
        worker.counter("creditline_scorecard_psi", version=FITTED.version, characteristic="score")
        >= 0
    )

    # The expert card, applied while the worker runs (with the default activation delay).
    card = tmp_path / "expert.yaml"
    card.write_text(scorecard_yaml(EXPERT))
    applied = creditline_slow(
        settings,
        "scorecard",
        "apply",
        str(card),
        "--by",
        "risk-team",
        "--comment",
        "rollback",
        "--yes",
    )
    assert applied.returncode == 0, applied.stderr
    assert f"applied scorecard {EXPERT.version}" in applied.stdout

    async def switched() -> bool:
        return worker.counter("creditline_scorecard_info", version=EXPERT.version) == 1.0

    await wait_for(switched, timeout=60, message="the worker to switch scorecards")
    after = await decisions_for(
        settings, [loan(user, f"{user}-q2", datetime.now(UTC)) for user in users]
    )
    for user in users:
        first, second = before[f"{user}-q1"], after[f"{user}-q2"]
        assert second.scorecard_version == EXPERT.version
        assert second.score != first.score  # another card, another scale
        assert second.pd == round(EXPERT.pd_of(second.score), 6)
    await wait_for(lambda: monitored(EXPERT.version), message="PSI gauges of the new card")
    assert worker.counter("creditline_scorecard_info", version=FITTED.version) == 0.0

    # A broken card is refused by the CLI; one that reaches the topic anyway changes nothing.
    broken = tmp_path / "broken.yaml"
    doc = json.loads(json.dumps(EXPERT.model_dump(mode="json", exclude_none=True)))
    doc["version"] = "broken-1"
    doc["characteristics"]["debt_to_income"]["missing"] = {"points": 500}
    broken.write_text(json.dumps(doc))
    refused = creditline_slow(settings, "scorecard", "apply", str(broken), "--yes")
    assert refused.returncode == 1 and "nothing was applied" in refused.stderr
    envelope = {"scorecard": doc, "applied_at": datetime.now(UTC).isoformat()}
    topic = Topics.from_settings(settings).policy
    await produce(settings, [(topic, b"scorecard/broken-1", json.dumps(envelope).encode())])

    async def rejected() -> bool:
        return worker.counter("creditline_scorecard_rejected_total") == 1.0

    await wait_for(rejected, message="the worker to reject the broken card")
    third = await decisions_for(settings, [loan(users[0], "q3", datetime.now(UTC))])
    assert third["q3"].scorecard_version == EXPERT.version

    shown = creditline_slow(settings, "scorecard", "show", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == EXPERT.version
    rows = json.loads(creditline_slow(settings, "scorecard", "history", "--json").stdout)
    assert [(r["version"], r["valid"], r["applied_by"]) for r in rows] == [
        (EXPERT.version, True, "risk-team"),
        ("scorecard/broken-1", False, None),
    ]
    assert any("missing" in p for p in rows[1]["problems"])


async def test_labelled_histories_come_out_of_the_topics_point_in_time(
    worker_settings: Settings, tmp_path: Path
) -> None:
    # A worker that trusts request times up to 400 days back, so that decisions can be
    # judged 13 months ago (their 12-month window has ended by now).
    settings = worker_settings.model_copy(update={"request_time_tolerance_seconds": 400 * 86400})
    async with running_worker(settings, tmp_path / "worker.log"):
        now = datetime.now(UTC)
        # One user went 95 days past due 4 months after the decision (bad), one did not
        # (good), one was decided last week (immature: left out).
        users = {"u-bad": 272, "u-good": None, "u-new": None}
        events = [e for user, missed in users.items() for e in history(user, now, missed)]
        await publish(settings, events)
        for user in users:
            await wait_applied(settings, user, 15)
        long_ago = now - timedelta(days=396)
        requests = [loan("u-bad", "q-bad", long_ago), loan("u-good", "q-good", long_ago)]
        requests.append(loan("u-new", "q-new", now - timedelta(days=7)))
        decided = await decisions_for(settings, requests)
        assert all(d.evaluated_at is not None for d in decided.values())
        out = tmp_path / "data"
        result = creditline_slow(settings, "scorecard", "dataset", "--out", str(out))
        assert result.returncode == 0, result.stderr
    labels = read_labels(out / "labels.csv")
    logged = read_events(out / "events.jsonl")
    # The decisions are the observation points: the two mature ones, labelled by what came after.
    assert sorted((label.user_id, label.as_of, label.bad) for label in labels) == [
        ("u-bad", decided["q-bad"].evaluated_at, 1),
        ("u-good", decided["q-good"].evaluated_at, 0),
    ]
    assert {e.user_id for e in logged} == {"u-bad", "u-good"}
    # Point in time: a label's features are those of the events at or before it only.
    for label in labels:
        own = [e for e in logged if e.user_id == label.user_id]
        before = [e for e in own if e.occurred_at <= label.as_of]
        assert len(before) < len(own)  # the events after the point are in the file...
        features = features_at(own, label.as_of)
        assert features is not None
        assert features == features_at(before, label.as_of)  # ...and never in its features
    with (out / "labels.csv").open() as handle:
        assert next(csv.reader(handle)) == ["user_id", "as_of", "bad"]
    # The files are what fit and evaluate read.
    evaluated = creditline_slow(
        settings,
        "scorecard",
        "evaluate",
        "--events",
        str(out / "events.jsonl"),
        "--labels",
        str(out / "labels.csv"),
        "--json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert (figures["n"], figures["bad_rate"]) == (2, 0.5)
    assert figures["scorecard_version"] == FITTED.version


def test_fit_and_evaluate_from_the_command_line(tmp_path: Path) -> None:
    """simulate → fit (with its report) → evaluate, as an analyst runs them."""
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", "scorecard", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            timeout=300,
        )

    for name, seed in (("train", 3), ("test", 4)):
        made = cli(
            "simulate",
            "--users",
            "600",
            "--seed",
            str(seed),
            "--events",
            f"{name}.jsonl",
            "--labels",
            f"{name}.csv",
        )
        assert made.returncode == 0, made.stderr
    fitted = cli(
        "fit",
        "--events",
        "train.jsonl",
        "--labels",
        "train.csv",
        "--out",
        "card.yaml",
        "--report",
        "report",
        "--version",
        "fitted-test-1",
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "fitted-test-1" in fitted.stdout
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {
        "report.md",
        "report.json",
        "roc.png",
        "ks.png",
        "calibration.png",
    }
    figures = {}
    for card in ("card.yaml", None):
        args = ["evaluate", "--events", "test.jsonl", "--labels", "test.csv", "--json"]
        result = cli(*args, *(["--scorecard", card] if card else []))
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert {"auc", "gini", "ks", "brier", "n", "bad_rate"} <= set(summary)
        figures[summary["scorecard_version"]] = summary
    assert figures["fitted-test-1"]["auc"] > 0.7 and figures[FITTED.version]["auc"] > 0.7
    # Bad input is one clear line, not a traceback.
    (tmp_path / "bad.csv").write_text("user_id,as_of,bad\nu-1,yesterday,1\n")
    bad = cli("evaluate", "--events", "test.jsonl", "--labels", "bad.csv")
    assert bad.returncode == 2 and "bad.csv:2" in bad.stderr and "Traceback" not in bad.stderr
