"""A candidate in shadow with the real worker: it answers every request on the shadow topic,
the live answers stay exactly what the live configuration gives, the metrics count what was
published, and promoting it makes its answers the live ones."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path

import yaml

from schemas.models import DisplayedStatus, InputEvent, LoanDecision, LoanRequest, Outcome
from streams.core.policy import load_default_policy
from streams.topics import Topics
from tests.builders import asset, repayment
from tests.e2e.conftest import WorkerProcess, creditline
from tests.support import decisions_for, publish, read_to_end, wait_applied, wait_for

POLICY = load_default_policy()
creditline_slow = functools.partial(creditline, timeout=120)


def ask(user: str, rid: str) -> LoanRequest:
    return LoanRequest(
        request_id=rid,
        user_id=user,
        requested_at=datetime.now(UTC),
        amount=Decimal("300.00"),
        term_months=6,
        displayed_status=DisplayedStatus.CLOSED,
    )


def histories(now: datetime) -> tuple[list[str], list[str], list[InputEvent]]:
    """Thin users (four on-time repayments: closed by default) and well-off users (open)."""
    thin = [f"u-thin-{i}" for i in range(5)]
    rich = [f"u-rich-{i}" for i in range(5)]
    events: list[InputEvent] = []
    for user in thin + rich:
        events += [
            repayment(
                event_id=f"{user}-r{k}",
                user_id=user,
                occurred_at=(now - timedelta(days=30 * k + 3)).isoformat(),
                outstanding_balance="0.00",
            )
            for k in range(4 if user in thin else 12)
        ]
        if user in rich:
            events += [
                asset(
                    event_id=f"{user}-{kind}",
                    user_id=user,
                    occurred_at=(now - timedelta(days=380)).isoformat(),
                    asset_type=kind,
                    value="30000.00",
                    verified=True,
                )
                for kind in ("income", "deposit")
            ]
    return thin, rich, events


async def shadow_decisions(worker: WorkerProcess) -> dict[str, LoanDecision]:
    topic = Topics.from_settings(worker.settings).loan_decisions_shadow
    records = await read_to_end(worker.settings, topic)
    return {d.request_id: d for d in (LoanDecision.model_validate_json(r.value) for r in records)}


async def test_a_candidate_in_shadow_answers_beside_the_live_policy_until_promoted(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = worker.settings
    thin, rich, events = histories(datetime.now(UTC))
    await publish(settings, events)
    for user in thin + rich:
        await wait_applied(settings, user, 4 if user in thin else 14)

    doc = yaml.safe_load(resources.files("streams.policies").joinpath("default.yaml").read_text())
    doc["version"] = "candidate-looser-1"
    doc["status"]["thresholds"] = {"close_below": 480, "reopen_at": 500}
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(doc, allow_unicode=True))
    installed = creditline_slow(
        settings, "policy", "apply", str(candidate), "--shadow", "--by", "risk-team"
    )
    assert installed.returncode == 0, installed.stderr
    label = "policy candidate-looser-1"

    async def in_shadow() -> bool:
        return worker.counter("creditline_shadow_info", candidate=label) == 1.0

    await wait_for(in_shadow, message="the worker to install the candidate")
    users = thin + rich
    live = await decisions_for(settings, [ask(u, f"{u}-q1") for u in users])

    async def all_shadowed() -> bool:
        return set(await shadow_decisions(worker)) >= set(live)

    await wait_for(all_shadowed, message="a shadow decision for every request")
    shadow = await shadow_decisions(worker)
    assert set(shadow) == set(live)  # every request, once
    for rid, decision in live.items():
        assert decision.policy_version == POLICY.version  # the live policy still decides
        assert shadow[rid].policy_version == "candidate-looser-1"
        thin_user = decision.user_id in thin
        assert decision.outcome is (Outcome.DECLINED if thin_user else Outcome.APPROVED)
        assert shadow[rid].outcome is Outcome.APPROVED
    # The live answers are exactly what the live configuration gives without any shadow:
    # `explain` re-derives them from the logs through the core alone.
    explained = creditline_slow(settings, "explain", "--all", "--json")
    assert explained.returncode == 0, explained.stdout[-2000:] + explained.stderr
    report = json.loads(explained.stdout)
    assert report["decisions"] == len(live) and report["matching"] == len(live)
    # The metrics count exactly what was published on the shadow topic.
    for (live_outcome, shadow_outcome), expected in {
        ("declined", "approved"): len(thin),
        ("approved", "approved"): len(rich),
    }.items():
        counted = worker.counter(
            "creditline_shadow_decisions_total", live=live_outcome, shadow=shadow_outcome
        )
        assert counted == expected, (live_outcome, shadow_outcome)
    approved_shadow = sum(d.approved_amount for d in shadow.values())
    approved_live = sum(d.approved_amount for d in live.values())
    assert worker.counter("creditline_shadow_approved_amount_total", side="shadow") == float(
        approved_shadow
    )
    assert worker.counter("creditline_shadow_approved_amount_total", side="live") == float(
        approved_live
    )
    status = creditline_slow(settings, "shadow", "status", "--json")
    assert status.returncode == 0, status.stderr
    compared = json.loads(status.stdout)
    assert compared["candidate"]["policy_version"] == "candidate-looser-1"
    assert (compared["requests"], compared["disagreements"]) == (len(users), len(thin))
    assert sorted(compared["disagreeing_request_ids"]) == sorted(f"{u}-q1" for u in thin)
    assert compared["approved_amount"]["difference"] == str(approved_shadow - approved_live)

    # Promoted: from the instant it takes effect, its answers are the live ones.
    promoted = creditline_slow(settings, "shadow", "promote", "--by", "risk-team")
    assert promoted.returncode == 0, promoted.stderr

    async def live_now() -> bool:
        switched = worker.counter("creditline_policy_info", version="candidate-looser-1") == 1.0
        stopped = worker.counter("creditline_shadow_info", candidate=label) == 0.0
        return switched and stopped

    await wait_for(live_now, timeout=60, message="the candidate to decide")
    after = await decisions_for(settings, [ask(u, f"{u}-q2") for u in users])
    for rid, decision in after.items():
        assert decision.policy_version == "candidate-looser-1"
        assert decision.outcome is Outcome.APPROVED, rid
    assert set(await shadow_decisions(worker)) == set(live)  # nothing in shadow any more
    history = json.loads(creditline_slow(settings, "policy", "history", "--json").stdout)
    assert [(r["version"], r["applied_by"]) for r in history if r["valid"]][-1] == (
        "candidate-looser-1",
        "risk-team",
    )
    nothing = creditline_slow(settings, "shadow", "status", "--json")
    assert json.loads(nothing.stdout)["candidate"] is None
