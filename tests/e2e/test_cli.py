"""The ``creditline`` command against the real stack and a running worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
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


async def test_status_reports_what_the_fold_and_the_decisions_have_not_processed(
    settings: Settings,
) -> None:
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC).isoformat()
    await produce(
        settings,
        [
            (
                topics.spending,
                f"u{i}".encode(),
                encode(spending_doc(user_id=f"u{i}", event_id=f"e{i}", occurred_at=now)),
            )
            for i in range(7)
        ],
    )
    result = creditline(settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    kafka = next(s for s in json.loads(result.stdout) if s["name"] == "kafka")
    assert kafka["lag"] == {
        topics.repayments: {"group": settings.events_group, "records": 0},
        topics.spending: {"group": settings.events_group, "records": 7},
        topics.assets: {"group": settings.events_group, "records": 0},
        topics.loan_requests: {"group": settings.decisions_group, "records": 0},
    }
    text = creditline(settings, "status").stdout
    assert re.search(r"│ 7 +│", text), text  # the spending topic's row


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
    assert result.returncode == 2  # a usage error
    assert "invalid request: amount" in result.stderr


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


def test_the_command_line_says_what_is_wrong_in_one_line_with_its_exit_code(
    base_settings: Settings, tmp_path: Path
) -> None:
    """Usage errors exit 2 with the field named, never a traceback or a library's repr."""
    cases = [
        (("inspect", "u-1", "--as-of", "last tuesday"), "--as-of"),
        (("request", "u-1", "abc"), "amount"),
        (("request", "not a user!", "100"), "user_id"),
        (("worker", "--role", "foo"), "role"),
        (("--config", str(tmp_path / "missing.toml"), "redis-acl"), "--config"),
    ]
    for args, named in cases:
        result = creditline(base_settings, *args, timeout=60)
        output = result.stdout + result.stderr
        assert result.returncode == 2, (args, output)
        assert named in output, (args, output)
        assert "Traceback" not in output and "ConversionSyntax" not in output, (args, output)
        assert len(result.stderr.strip().splitlines()) <= 12, (args, output)  # typer's box


def test_version_config_file_and_json_errors(base_settings: Settings, tmp_path: Path) -> None:
    from streams import __version__

    version = creditline(base_settings, "--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"creditline {__version__}")
    # A TOML file gives settings; the environment wins over it.
    config = tmp_path / "creditline.toml"
    config.write_text('redis_key_prefix = "from-file"\nkafka_sasl_username = "file-user"\n')
    acl = creditline(base_settings, "--config", str(config), "redis-acl")
    # The test's environment sets CREDITLINE_REDIS_KEY_PREFIX: it wins.
    assert f"~{base_settings.redis_key_prefix}:*" in acl.stdout
    dead = base_settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:9"})
    failed = creditline(dead, "policy", "history", "--json", timeout=120)
    assert failed.returncode == 1
    doc = json.loads(failed.stdout)
    assert doc["exit_code"] == 1 and "127.0.0.1:9" in doc["error"]


def test_schemas_export_writes_only_into_the_directory_given(tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "schemas", "export", "--directory", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "asyncapi.yaml").is_file()
    assert (target / "LoanDecision.schema.json").is_file()


async def test_topics_lists_without_creating_unless_asked(base_settings: Settings) -> None:
    from tests.conftest import cleanup, isolated

    fresh = isolated(base_settings)
    try:
        listed = creditline(fresh, "topics", "--json", timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert {row["exists"] for row in json.loads(listed.stdout)} == {False}
        created = creditline(fresh, "topics", "--create", "--json", timeout=120)
        assert {row["exists"] for row in json.loads(created.stdout)} == {True}
    finally:
        await cleanup(fresh)
