"""The policy engine's scenarios, each against the real Kafka, Redis and worker process,
with the default policy (and, in the last one, policies applied while the worker runs)."""

from __future__ import annotations

import functools
import itertools
import json
import os
import pty
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.models import (
    AssetEvent,
    DisplayedStatus,
    InputEvent,
    LoanDecision,
    LoanRequest,
    Outcome,
)
from streams.core.policy import load_default_policy
from streams.devtools.simulation import Persona, persona_history
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import asset, repayment, spending
from tests.conftest import isolated
from tests.e2e.conftest import WorkerProcess, creditline, free_port, settings_env
from tests.support import (
    decisions_for,
    produce,
    publish,
    status_changes,
    wait_applied,
    wait_for,
)

POLICY = load_default_policy()
#: Policy commands wait for the worker to follow: give them longer than the default.
creditline_slow = functools.partial(creditline, timeout=120)


def on_a_terminal(settings: Settings, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``creditline`` command with a pseudo-terminal as standard input, typing
    ``answer`` into it (output still captured)."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            stdin=follower,
            capture_output=True,
            text=True,
            env=settings_env(settings),
            timeout=120,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)


def request(
    user: str, rid: str, at: datetime, amount: str = "1000.00", displayed: str = "closed"
) -> LoanRequest:
    return LoanRequest(
        request_id=rid,
        user_id=user,
        requested_at=at,
        amount=Decimal(amount),
        term_months=12,
        displayed_status=DisplayedStatus(displayed),
    )


def codes(decision: LoanDecision) -> list[str]:
    return [r.code for r in decision.reasons]


async def test_recovery_reopens_the_line_and_overrides_a_stale_closed_display(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    now = datetime.now(UTC)
    history = persona_history(Persona.RECOVERING, "u-rec", now, random.Random(1))
    proofs = [e for e in history if isinstance(e, AssetEvent)]
    before = [e for e in history if not isinstance(e, AssetEvent)]
    await publish(settings, before)
    await wait_applied(settings, "u-rec", len(before))
    [first] = await wait_for(lambda: status_changes(settings, "u-rec"), message="first status")
    assert first.status.value == "closed"
    assert first.previous_status is None

    await publish(settings, proofs)  # verified income and deposit
    await wait_applied(settings, "u-rec", len(history))

    async def reopened() -> bool:
        return len(await status_changes(settings, "u-rec")) == 2

    await wait_for(reopened, message="the line to reopen")
    changes = await status_changes(settings, "u-rec")
    assert [(c.previous_status, c.status) for c in changes][1] == ("closed", "open")
    # The proofs are dated days ago: they restate the status since then, and say why.
    assert [r.code for r in changes[1].reasons][:2] == ["LATE_EVENT_RESTATED", "SCORE_QUALIFIES"]
    assert all(r.texts["zh"] for r in changes[1].reasons)
    decision = (await decisions_for(settings, [request("u-rec", "q-rec", now, "2000.00")]))["q-rec"]
    assert decision.outcome is Outcome.APPROVED
    assert decision.overrides_displayed_status
    assert decision.policy_version == POLICY.version


def current_promotion_policy(version: str, ends_at: datetime) -> dict[str, Any]:
    """The default policy with its promotion moved to run from an hour ago to ``ends_at``."""
    doc: dict[str, Any] = yaml.safe_load(
        resources.files("streams.policies").joinpath("default.yaml").read_text()
    )
    doc["version"] = version
    doc["promotions"][0]["starts_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    doc["promotions"][0]["ends_at"] = ends_at.isoformat()
    return doc


async def apply_policy(worker: WorkerProcess, tmp_path: Path, doc: dict[str, Any]) -> None:
    """`creditline policy apply` a document and wait until the worker has it in force."""
    path = tmp_path / f"{doc['version']}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    result = creditline_slow(worker.settings, "policy", "apply", str(path), "--yes")
    assert result.returncode == 0, result.stderr

    async def in_force() -> bool:
        return worker.counter("creditline_policy_info", version=doc["version"]) == 1.0

    await wait_for(in_force, message=f"policy {doc['version']} in force")


@pytest.fixture
def worker_settings(base_settings: Settings) -> Settings:
    """Policies take effect a second after they are applied; requests more than 5 s older
    than their arrival are not trusted."""
    return isolated(
        base_settings,
        partitions=12,
        web_port=free_port(),
        policy_activation_seconds=1,
        request_time_tolerance_seconds=5,
    )


async def test_a_missed_payment_freezes_an_open_line_even_during_a_promotion(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = worker.settings
    await apply_policy(
        worker,
        tmp_path,
        current_promotion_policy("test-promo-freeze", datetime.now(UTC) + timedelta(days=1)),
    )
    missed_at = datetime.now(UTC) - timedelta(days=2)
    good: list[InputEvent] = [
        repayment(
            event_id=f"ok{i}",
            user_id="u-slip",
            occurred_at=(missed_at - timedelta(days=30 * (i + 1))).isoformat(),
        )
        for i in range(10)
    ]
    good.append(
        asset(
            event_id="inc",
            user_id="u-slip",
            asset_type="income",
            value=20000,
            occurred_at=(missed_at - timedelta(days=40)).isoformat(),
        )
    )
    await publish(settings, good)
    await wait_applied(settings, "u-slip", len(good))

    async def announced_open() -> bool:
        changes = await status_changes(settings, "u-slip")
        return bool(changes) and changes[-1].status.value == "open"

    # Open once the whole history is in. (Each batch announces the status it ends in: one
    # that held only the latest repayments, no income yet, may have announced another.)
    await wait_for(announced_open, message="the open status event")
    missed = repayment(
        event_id="late",
        user_id="u-slip",
        occurred_at=missed_at.isoformat(),
        amount_paid=0,
        days_past_due=35,
    )
    await publish(settings, [missed])
    await wait_applied(settings, "u-slip", len(good) + 1)

    async def frozen() -> bool:
        changes = await status_changes(settings, "u-slip")
        return bool(changes) and changes[-1].status.value == "frozen"

    await wait_for(frozen, message="the frozen status event")
    changes = await status_changes(settings, "u-slip")
    # The open line, then frozen at the late repayment itself, by event time.
    assert [c.status.value for c in changes[-2:]] == ["open", "frozen"]
    previous = changes[-1].previous_status
    assert previous is not None and previous.value == "open"
    assert changes[-1].changed_at == missed_at
    decision = (
        await decisions_for(
            settings, [request("u-slip", "q-slip", datetime.now(UTC), displayed="open")]
        )
    )["q-slip"]
    assert decision.outcome is Outcome.DECLINED
    assert codes(decision)[0] == "FROZEN_PAST_DUE"
    assert decision.overrides_displayed_status
    assert "PROMOTION_APPLIED" not in codes(decision)
    assert decision.policy_version == "test-promo-freeze"


async def test_a_promotion_is_judged_at_the_trusted_request_time_and_ends_on_time(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = worker.settings
    now = datetime.now(UTC)
    # Between the promotion's lowered threshold and the standard one (see the unit test
    # tests/unit/test_decision.py::borderline_user).
    events: list[InputEvent] = [
        repayment(
            event_id=f"r{i}",
            user_id="u-edge",
            outstanding_balance="0.00",
            occurred_at=(now - timedelta(days=1 + 30 * i)).isoformat(),
        )
        for i in range(8)
    ]
    events += [
        spending(
            event_id="s-old", user_id="u-edge", occurred_at=(now - timedelta(days=200)).isoformat()
        ),
        spending(
            event_id="s-new", user_id="u-edge", occurred_at=(now - timedelta(days=3)).isoformat()
        ),
        asset(
            event_id="inc",
            user_id="u-edge",
            asset_type="income",
            value=5000,
            occurred_at=(now - timedelta(days=5)).isoformat(),
        ),
        asset(
            event_id="dep",
            user_id="u-edge",
            asset_type="deposit",
            value=20000,
            occurred_at=(now - timedelta(days=5)).isoformat(),
        ),
    ]
    await publish(settings, events)
    await wait_applied(settings, "u-edge", len(events))
    before = await decisions_for(settings, [request("u-edge", "q-before", datetime.now(UTC))])
    assert before["q-before"].outcome is Outcome.DECLINED  # below the standard threshold

    ends = datetime.now(UTC) + timedelta(seconds=20)
    await apply_policy(worker, tmp_path, current_promotion_policy("test-promo-end", ends))
    inside = await decisions_for(settings, [request("u-edge", "q-inside", datetime.now(UTC))])
    assert inside["q-inside"].outcome is Outcome.APPROVED
    assert "PROMOTION_APPLIED" in codes(inside["q-inside"])

    async def ended() -> bool:
        return datetime.now(UTC) > ends + timedelta(seconds=1)

    await wait_for(ended, timeout=60, message="the promotion to end")
    after = await decisions_for(
        settings,
        [
            request("u-edge", "q-after", datetime.now(UTC)),
            # Backdated into the promotion: not trusted, never the ended promotion.
            request("u-edge", "q-backdated", ends - timedelta(seconds=10)),
        ],
    )
    assert after["q-after"].outcome is Outcome.DECLINED
    assert "PROMOTION_APPLIED" not in codes(after["q-after"])
    assert after["q-backdated"].outcome is Outcome.REVIEW
    assert codes(after["q-backdated"]) == ["REQUEST_TIME_UNTRUSTED"]
    # The same requests again (redelivered or re-sent) get the same answers.
    again = await decisions_for(
        settings, [request("u-edge", "q-inside", inside["q-inside"].evaluated_at or now)]
    )
    assert again["q-inside"] == inside["q-inside"]


def high_risk_history(user: str, income: int, verified: bool, deposit: int) -> list[InputEvent]:
    now = datetime.now(UTC)

    def ago(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    # A repayment missed until 65 days past due, 100 days ago: high risk (worst days past
    # due in 12 months ≥ 60), not frozen.
    events: list[InputEvent] = [
        repayment(
            event_id="m0",
            user_id=user,
            occurred_at=ago(100),
            amount_paid=0,
            days_past_due=65,
            outstanding_balance="3000.00",
        )
    ]
    events += [
        repayment(event_id=f"ok{i}", user_id=user, occurred_at=ago(30 * (i + 3))) for i in range(8)
    ]
    events += [
        spending(event_id=f"s{i}", user_id=user, occurred_at=ago(30 * i + 2)) for i in range(6)
    ]
    events.append(
        asset(
            event_id="inc",
            user_id=user,
            asset_type="income",
            value=income,
            verified=verified,
            occurred_at=ago(10),
        )
    )
    if deposit:
        events.append(
            asset(event_id="dep", user_id=user, value=deposit, verified=True, occurred_at=ago(10))
        )
    return events


async def test_a_high_risk_user_with_high_income_and_low_debt_gets_a_capped_exception(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    qualifying = high_risk_history("u-hr-ok", 30000, True, 30000)
    peer = high_risk_history("u-hr-peer", 6000, False, 0)
    await publish(settings, qualifying + peer)
    await wait_applied(settings, "u-hr-ok", len(qualifying))
    await wait_applied(settings, "u-hr-peer", len(peer))
    now = datetime.now(UTC)
    decided = await decisions_for(
        settings,
        [
            request("u-hr-ok", "q-ok", now, "5000.00"),
            request("u-hr-peer", "q-peer", now, "5000.00"),
        ],
    )
    ok, declined = decided["q-ok"], decided["q-peer"]
    cap = POLICY.exceptions[0].limit_cap
    assert ok.outcome is Outcome.APPROVED
    assert "SEGMENT_EXCEPTION_HIGH_INCOME_LOW_DEBT" in codes(ok)
    assert 0 < ok.credit_limit <= cap
    assert declined.outcome is Outcome.DECLINED
    assert "SEGMENT_HIGH_RISK" in codes(declined)


async def test_an_oscillating_score_changes_status_at_most_once_per_dwell_time(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    t0 = datetime.now(UTC) - timedelta(days=25)
    base: list[InputEvent] = [
        repayment(
            event_id=f"r{i}",
            user_id="u-osc",
            outstanding_balance="0.00",
            occurred_at=(t0 - timedelta(days=30 * (i + 1))).isoformat(),
        )
        for i in range(2)
    ]
    await publish(settings, base)
    applied = len(base)
    await wait_applied(settings, "u-osc", applied)
    days = 21
    for day in range(days):  # a verified deposit appears and disappears every day
        toggle = asset(
            event_id=f"dep{day}",
            user_id="u-osc",
            value=200000 if day % 2 == 0 else 0,
            verified=True,
            occurred_at=(t0 + timedelta(days=day)).isoformat(),
        )
        await publish(settings, [toggle])
        applied += 1
        await wait_applied(settings, "u-osc", applied)  # one batch per toggle

    # The status history, by event time: the dwell time holds each change.
    shown = creditline(settings, "inspect", "u-osc", "--json")
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)["status_history"]
    settled = [datetime.fromisoformat(c["since"]) for c in history if c["settled"]]
    statuses = [c["status"] for c in history]
    assert statuses[:4] == ["closed", "open", "closed", "open"], statuses
    dwell = timedelta(days=POLICY.status.min_dwell_days)
    assert all(b - a >= dwell for a, b in itertools.pairwise(settled))
    assert len(settled) < days // 2  # without hysteresis it would flip every day
    # Each toggle arrived after the reviews up to now: the present was restated when it
    # changed, and the last announcement is the present status.
    changes = await status_changes(settings, "u-osc")
    assert changes[-1].status.value == statuses[-1]
    assert changes[-1].changed_at == datetime.fromisoformat(history[-1]["since"])
    assert any(c.reasons[0].code == "LATE_EVENT_RESTATED" for c in changes[1:])
    # The stability metric: no two changes closer than the dwell time.
    intervals = worker.samples()["creditline_line_status_change_interval_seconds_bucket"]
    below_dwell = [
        v for labels, v in intervals.items() if float(dict(labels)["le"]) < dwell.total_seconds()
    ]
    assert set(below_dwell) == {0.0}


async def test_policies_change_decisions_at_run_time_and_invalid_ones_change_nothing(
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    settings = worker.settings
    now = datetime.now(UTC)
    events: list[InputEvent] = [
        repayment(
            event_id=f"r{i}",
            user_id="u-pol",
            outstanding_balance="0.00",
            occurred_at=(now - timedelta(days=30 * i + 1)).isoformat(),
        )
        for i in range(4)
    ]
    events += [
        spending(
            event_id="s-old", user_id="u-pol", occurred_at=(now - timedelta(days=200)).isoformat()
        ),
        spending(
            event_id="s-new", user_id="u-pol", occurred_at=(now - timedelta(days=3)).isoformat()
        ),
    ]
    await publish(settings, events)
    await wait_applied(settings, "u-pol", len(events))
    first = (await decisions_for(settings, [request("u-pol", "q-1", datetime.now(UTC))]))["q-1"]
    assert first.outcome is Outcome.DECLINED
    assert first.policy_version == POLICY.version

    # A looser policy, applied while the worker runs.
    doc = yaml.safe_load(resources.files("streams.policies").joinpath("default.yaml").read_text())
    doc["version"] = "test-looser-1"
    doc["status"]["thresholds"] = {"close_below": 480, "reopen_at": 500}
    looser = tmp_path / "looser.yaml"
    looser.write_text(yaml.safe_dump(doc, allow_unicode=True))
    apply_looser = ("policy", "apply", str(looser), "--by", "risk-team", "--comment", "loosen")
    # The guard: the what-if of the last 7 days first, then a confirmation. Without a
    # terminal to answer on, nothing is applied...
    guarded = creditline_slow(settings, *apply_looser)
    assert guarded.returncode == 2, guarded.stderr
    assert "1 requests of 1 users re-answered; 1 would change outcome (declined→approved 1)" in (
        " ".join(guarded.stdout.split())
    )
    assert "not applied" in guarded.stderr and "--yes" in guarded.stderr
    # ... a "no" on the terminal applies nothing either, and a "yes" applies it.
    declined = on_a_terminal(settings, "n\n", *apply_looser)
    assert declined.returncode == 1 and "not applied" in declined.stderr, declined.stderr
    history = creditline_slow(settings, "policy", "history", "--json")
    assert "test-looser-1" not in history.stdout
    result = on_a_terminal(settings, "y\n", *apply_looser)
    assert result.returncode == 0, result.stderr
    assert "would change outcome" in result.stdout and "applied policy test-looser-1" in (
        result.stdout
    )

    async def switched() -> bool:
        return worker.counter("creditline_policy_info", version="test-looser-1") == 1.0

    await wait_for(switched, message="the worker to switch policy")
    assert worker.counter("creditline_policy_info", version=POLICY.version) == 0.0
    second = (await decisions_for(settings, [request("u-pol", "q-2", datetime.now(UTC))]))["q-2"]
    assert second.outcome is Outcome.APPROVED
    assert second.policy_version == "test-looser-1"

    # An invalid document is refused by the CLI and nothing is published...
    doc["version"] = "test-broken-2"
    doc["status"]["thresholds"] = {"close_below": 700, "reopen_at": 600}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True))
    result = creditline_slow(settings, "policy", "apply", str(broken), "--yes")
    assert result.returncode == 1
    assert "reopen_at must be at least close_below" in result.stderr
    assert "nothing was applied" in result.stderr
    # ...and one that reaches the topic anyway is rejected by the worker, which keeps its policy.
    topic = Topics.from_settings(settings).policy
    await produce(
        settings,
        [
            (
                topic,
                b"test-broken-2",
                b'{"policy": {"version": "x"}, "applied_at": "2026-11-28T00:00:00Z"}',
            )
        ],
    )

    async def rejected() -> bool:
        return worker.counter("creditline_policy_rejected_total") == 1.0

    await wait_for(rejected, message="the worker to reject the broken policy")
    third = (await decisions_for(settings, [request("u-pol", "q-3", datetime.now(UTC))]))["q-3"]
    assert third.policy_version == "test-looser-1"
    assert third.outcome is Outcome.APPROVED

    history = creditline_slow(settings, "policy", "history", "--json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert [(r["version"], r["valid"]) for r in rows] == [
        ("test-looser-1", True),
        ("test-broken-2", False),
    ]
    assert rows[0]["applied_by"] == "risk-team"
    shown = creditline_slow(settings, "policy", "show", "--json")
    assert json.loads(shown.stdout)["version"] == "test-looser-1"
