"""The ``creditline`` command against the real stack and a running worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.models import LoanDecision, Outcome
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, spending_doc
from tests.e2e.conftest import WorkerProcess, creditline
from tests.support import produce, wait_applied, wait_for


def test_status_reports_both_services(base_settings: Settings) -> None:
    result = creditline(base_settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    services = {s["name"]: s for s in json.loads(result.stdout)}
    assert services["kafka"]["reachable"]
    assert services["redis"]["reachable"]


def test_up_is_idempotent_when_the_stack_runs(base_settings: Settings) -> None:
    result = creditline(base_settings, "up")
    assert result.returncode == 0, result.stderr
    assert "already reachable" in result.stdout


def test_unreachable_broker_is_a_clear_error(base_settings: Settings) -> None:
    dead = base_settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:9"})
    result = creditline(dead, "topics", timeout=120)
    assert result.returncode == 1
    assert "127.0.0.1:9" in result.stderr
    assert "creditline up" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_then_request_prints_the_live_decision(worker: WorkerProcess) -> None:
    settings = worker.settings
    result = creditline(
        settings, "simulate", "--users", "4", "--seed", "3", "--prefix", "cli", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["requests"] == 4
    # steady approved, recovering approved (overriding closed), slipping declined (overriding
    # open), thin high earner approved.
    assert summary["decisions"] == {"approved": 3, "declined": 1}
    assert summary["overrides"] == 2
    again = creditline(
        settings, "simulate", "--users", "4", "--seed", "3", "--prefix", "cli", "--json"
    )
    assert json.loads(again.stdout)["published"] == summary["published"]  # reproducible
    # cli-000001 is a "recovering" user: the app shows closed, the live score approves.
    result = creditline(
        settings, "request", "cli-000001", "1500", "--displayed", "closed", "--json"
    )
    assert result.returncode == 0, result.stderr
    decision = LoanDecision.model_validate_json(result.stdout)
    assert decision.outcome is Outcome.APPROVED
    assert decision.overrides_displayed_status
    result = creditline(settings, "inspect", "cli-000001", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "open"


def test_request_with_a_bad_amount_is_refused_before_publishing(base_settings: Settings) -> None:
    result = creditline(base_settings, "request", "u-1", "12.345")
    assert result.returncode == 1
    assert "invalid request" in result.stderr


async def test_dead_letters_can_be_listed_shown_fixed_and_redriven(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC).isoformat()
    bad_amount = spending_doc(user_id="u-dlq", event_id="s-fix", occurred_at=now, amount="9.999")
    await produce(
        settings,
        [
            (topics.spending, b"u-dlq", encode(bad_amount)),
            (topics.spending, b"u-dlq", b"garbage"),
            (topics.spending, b"u-dlq", b"more garbage"),
        ],
    )
    listed: dict[str, Any] = {}

    async def three() -> bool:
        nonlocal listed
        result = creditline(settings, "dlq", "list", "--json")
        listed = json.loads(result.stdout) if result.returncode == 0 else {}
        return listed.get("total") == 3

    await wait_for(three, message="three dead letters listed")
    assert listed["by_code"] == {"TOO_MANY_DECIMALS": 1, "NOT_JSON": 2}
    [decimals] = [r for r in listed["records"] if r["code"] == "TOO_MANY_DECIMALS"]
    assert decimals["source"].startswith(f"{topics.spending}[")
    shown = creditline(settings, "dlq", "show", decimals["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["headers"]["error.code"] == "TOO_MANY_DECIMALS"

    # Fix the amount and re-drive just that record: it is applied.
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text(json.dumps({"id": decimals["id"], "value": {**bad_amount, "amount": "9.99"}}))
    result = creditline(settings, "dlq", "redrive", "--fixed", str(fixes), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "redriven": 1,
        "topics": {topics.spending: 1},
        "skipped": 0,
        "skipped_ids": [],
    }
    state = await wait_applied(settings, "u-dlq", 1)
    assert state.spendings == 1

    # Re-driving the garbage as it is only dead-letters it again (and nothing else).
    result = creditline(settings, "dlq", "redrive", "--code", "NOT_JSON", "--json")
    redriven = json.loads(result.stdout)
    assert redriven["topics"] == {topics.spending: 2}
    assert (redriven["read"], redriven["not_read"]) == (3, 0)

    async def five() -> bool:
        result = creditline(settings, "dlq", "list", "--json")
        return result.returncode == 0 and json.loads(result.stdout)["total"] == 5

    await wait_for(five, message="the re-driven garbage dead-lettered again")
    assert creditline(settings, "dlq", "show", "9:999999").returncode == 1
    assert creditline(settings, "dlq", "redrive").returncode == 1
