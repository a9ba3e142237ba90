"""The ``creditline`` command against the real stack and a running worker."""

from __future__ import annotations

import json
import subprocess
import sys

from schemas.models import LoanDecision, Outcome
from streams.settings import Settings
from tests.e2e.conftest import WorkerProcess, settings_env


def creditline(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=timeout,
        check=False,
    )


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
    result = creditline(settings, "simulate", "--users", "4", "--seed", "3", "--prefix", "cli")
    assert result.returncode == 0, result.stderr
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
