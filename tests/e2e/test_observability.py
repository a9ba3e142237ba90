"""Metrics as operators see them: Prometheus conventions (promtool), and a real Prometheus
server scraping a running worker, returning data for every dashboard and alert expression."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.adapters.kafka.policies import publish_shadow
from streams.core.policy import load_default_policy
from streams.devtools.dashboards import expressions
from streams.devtools.simulation import population_events, requests, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import isolated
from tests.e2e.conftest import WorkerProcess, free_port, running_worker
from tests.support import assert_redis_matches_reference, produce, wait_for

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make install` installs Debian's prometheus package")
    return path


async def drive_traffic(settings: Settings) -> None:
    """Events, bad records and loan requests, so that every metric has samples."""
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    events = population_events(24, seed=61, now=now)
    await produce(
        settings,
        [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)],
    )
    await produce(settings, [(topics.spending, b"u-1", b"not json")])
    # Requests once the events are folded: the segment panels need approvals, which need
    # the users' histories (a request is answered from whatever is folded when it arrives).
    await assert_redis_matches_reference(settings, events)
    await produce(settings, [(topics.loan_requests, r.key, r.value) for r in requests(24, 61, now)])


def base_expression(expr: str) -> str:
    """An alert expression up to its first top-level comparison: the measured quantity, which
    must return data (what follows is the threshold and any guard such as `unless ...`)."""
    depth, cut, i = 0, None, 0
    quote: str | None = None
    while i < len(expr):
        ch = expr[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "=!<>":
            cut = i
            break
        i += 1
    return expr[:cut].strip() if cut is not None else expr


def test_base_expression_strips_only_the_top_level_comparison() -> None:
    assert base_expression('up{job="creditline"} == 0') == 'up{job="creditline"}'
    assert base_expression('max by (a) (x{y=~"z"}) >= 1') == 'max by (a) (x{y=~"z"})'
    assert base_expression("sum(rate(x[5m]))") == "sum(rate(x[5m]))"
    assert base_expression("max(a) > 0.25 unless on (v) max by (v) (b) < 1000") == "max(a)"


def test_alert_rules_are_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert names == {
        "CreditlineWorkerDown",
        "CreditlineDeadLetterStorm",
        "CreditlineConsumerLagGrowing",
        "CreditlineFoldFarBehind",
        "CreditlineDecisionLatencyHigh",
        "CreditlineNoPolicyLoaded",
        "CreditlineScorecardDrift",
        "CreditlineScorecardRejected",
    }


def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    """``deploy/prometheus/alerts_test.yml``: series in, alerts out, on promtool's own rule
    evaluation (a growing backlog, a backlog that stays, one that drains in time)."""
    result = subprocess.run(
        [promtool(), "test", "rules", str(ALERTS.with_name("alerts_test.yml"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_live_metrics_pass_promtool_and_carry_no_user_ids(worker: WorkerProcess) -> None:
    await drive_traffic(worker.settings)

    async def decided() -> bool:
        return worker.counter("creditline_decisions_total") >= 24

    await wait_for(decided, message="decisions")
    text = worker.metrics_text()
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "user-0000" not in text
    for line in text.splitlines():
        if line.startswith("creditline_") and "{" in line:
            labels = line[line.index("{") + 1 : line.index("}")]
            assert "user" not in labels, line


def query(port: int, expr: str) -> list[Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[Any] = body["data"]["result"]
    return result


async def test_a_real_prometheus_gets_data_for_every_dashboard_and_alert_expression(
    base_settings: Settings, tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: `make install` installs Debian's prometheus package")
    settings = isolated(base_settings, partitions=4, web_port=free_port(), lag_interval_seconds=1)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "creditline",
                "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        try:
            # A candidate in shadow, so the shadow panel has data too.
            candidate = load_default_policy().model_copy(update={"version": "candidate-obs-1"})
            await publish_shadow(settings, policy=candidate, applied_by="test")

            async def in_shadow() -> bool:
                return (
                    worker.counter("creditline_shadow_info", candidate="policy candidate-obs-1")
                    == 1
                )

            await wait_for(in_shadow, message="the worker to install the candidate")
            await drive_traffic(settings)

            async def decided() -> bool:
                return worker.counter("creditline_decisions_total") >= 24

            await wait_for(decided, message="decisions")
            alert_bases = [
                base_expression(r["expr"])
                for g in yaml.safe_load(ALERTS.read_text())["groups"]
                for r in g["rules"]
            ]
            missing: list[str] = []
            deadline = time.monotonic() + 60
            pending = [*expressions(), *alert_bases]
            while pending and time.monotonic() < deadline:
                missing = []
                for expr in pending:
                    try:
                        if not query(port, expr):
                            missing.append(expr)
                    except OSError:
                        missing.append(expr)
                pending = missing
                if pending:
                    await asyncio.sleep(1)
            assert not pending, f"no data for: {pending}"
            # Healthy system: no alert fires, and Prometheus evaluates every rule without error.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
                groups = json.loads(r.read())["data"]["groups"]
            rules = [rule for g in groups for rule in g["rules"]]
            assert len(rules) == 8
            assert [(r["name"], r["health"]) for r in rules if r["health"] != "ok"] == []
            active = [(r["name"], r["state"]) for r in rules if r["state"] != "inactive"]
            assert active == [], rules
        finally:
            server.terminate()
            server.wait(timeout=30)
