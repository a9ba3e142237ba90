"""docs/quickstart.md and docs/consumers.md, executed: every snippet runs as written (the files
the docs quote) against a worker on the test's own topics, given by environment variables.

Each snippet publishes two asset events and a loan request with its client and prints the
decision it read back; the decision must be the one the default policy gives that history.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.models import LoanDecision, LoanRequest
from streams.adapters.kafka.admin import ensure_topics
from streams.devtools.stack import LocalStack
from streams.settings import Settings
from tests.builders import repayment
from tests.conftest import cleanup, isolated
from tests.contract import jsonschema_valid
from tests.e2e.conftest import WorkerProcess, free_port
from tests.support import publish, read_to_end, status_changes, wait_for

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
#: Seconds each snippet took, printed at the end of the module (figures for the docs).
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def quickstart_worker(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for every snippet, on topics of the module's own."""
    settings = isolated(base_settings, partitions=12, web_port=free_port(), log_level="info")
    asyncio.run(ensure_topics(settings))
    process = WorkerProcess(settings, tmp_path_factory.mktemp("quickstart") / "worker.log")
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        asyncio.run(cleanup(settings))
        if TIMINGS:
            print("\nsnippet run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))
        assert "Traceback" not in process.log() or code == 0, process.log()[-4000:]


def snippet_env(settings: Settings, user: str, **extra: str) -> dict[str, str]:
    """What a reader of the quickstart sets: the bootstrap servers and topic names (here the
    test's own), a user id and a run id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITLINE_")}
    env |= {
        "CREDITLINE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CREDITLINE_TOPIC_ASSETS": settings.topic_assets,
        "CREDITLINE_TOPIC_SPENDING": settings.topic_spending,
        "CREDITLINE_TOPIC_LOAN_REQUESTS": settings.topic_loan_requests,
        "CREDITLINE_TOPIC_LOAN_DECISIONS": settings.topic_loan_decisions,
        "CREDITLINE_TOPIC_LINE_STATUS": settings.topic_line_status,
        "CREDITLINE_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
        "USER_ID": user,
        "RUN_ID": uuid.uuid4().hex[:8],
        **extra,
    }
    return env


def kafka_tools_jar(settings: Settings) -> Path:
    """kafka-tools (the console producer and consumer live there since Kafka 3.5; the broker's
    jars do not include it), resolved by Maven once per Kafka version into the jar cache."""
    directory = settings.cache_dir.expanduser().resolve() / f"kafka-tools-{settings.kafka_version}"
    jar = directory / f"kafka-tools-{settings.kafka_version}.jar"
    if not jar.exists():
        mvn = shutil.which("mvn")
        assert mvn is not None, "Maven is needed: `make install`"
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
                f"-Dartifact=org.apache.kafka:kafka-tools:{settings.kafka_version}",
                f"-DoutputDirectory={directory}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert result.returncode == 0 and jar.exists(), result.stdout + result.stderr
    return jar


def console_tools(settings: Settings, bin_dir: Path) -> Path:
    """kafka-console-producer.sh and kafka-console-consumer.sh as a Kafka distribution's bin/
    has them (each runs its main class with Kafka's jars), in ``bin_dir``."""
    libs = LocalStack(Settings()).ensure_kafka_jars()
    classpath = f"{libs}/*:{kafka_tools_jar(settings)}"
    bin_dir.mkdir(exist_ok=True)
    for script, main in [
        ("kafka-console-producer.sh", "org.apache.kafka.tools.ConsoleProducer"),
        ("kafka-console-consumer.sh", "org.apache.kafka.tools.consumer.ConsoleConsumer"),
    ]:
        path = bin_dir / script
        path.write_text(f'#!/bin/sh\nexec java -cp "{classpath}" {main} "$@"\n')
        path.chmod(0o755)
    return bin_dir


def run_snippet(name: str, command: list[str], env: dict[str, str]) -> str:
    """Run one snippet as a reader would; its standard output."""
    start = time.monotonic()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    TIMINGS[name] = time.monotonic() - start
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


SNIPPET_COMMANDS = {
    "kcat": ["bash", "docs/snippets/quickstart-kcat.sh"],
    "console": ["bash", "docs/snippets/quickstart-console.sh"],
    "aiokafka": [sys.executable, "docs/snippets/quickstart_aiokafka.py"],
    "confluent-kafka": [sys.executable, "docs/snippets/quickstart_confluent.py"],
    "java": ["java", "-cp", "{libs}/*", "docs/snippets/Quickstart.java"],
}


@pytest.mark.parametrize("name", list(SNIPPET_COMMANDS))
def test_a_snippet_publishes_events_and_a_request_and_reads_the_decision(
    quickstart_worker: WorkerProcess, name: str, tmp_path: Path
) -> None:
    settings = quickstart_worker.settings
    user = f"qs-{name}"
    env = snippet_env(settings, user)
    if name == "kcat" and shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: `make install` installs it")
    if name == "console":
        tools = console_tools(settings, tmp_path / "bin")
        env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    libs = str(LocalStack(Settings()).ensure_kafka_jars())
    command = [part.replace("{libs}", libs) for part in SNIPPET_COMMANDS[name]]
    output = run_snippet(name, command, env)
    line = [line for line in output.splitlines() if line.strip()][-1]
    decision = LoanDecision.model_validate_json(line)
    assert decision.request_id == f"{user}.loan.{env['RUN_ID']}"
    assert decision.user_id == user
    # A verified income of 12,000 and a deposit of 50,000: 621, open, limit 18,100.
    assert decision.outcome.value == "approved", line
    assert (decision.score, str(decision.credit_limit)) == (621, "18100.00")
    assert decision.overrides_displayed_status
    assert [r.code for r in decision.reasons] == ["LIVE_STATUS_OPEN"]
    assert jsonschema_valid("LoanDecision", line.encode())


def test_the_curl_snippet_posts_a_request_and_prints_its_published_decision(
    quickstart_worker: WorkerProcess,
) -> None:
    """docs/http-api.md's snippet: the line it prints is the decision record's value."""
    settings = quickstart_worker.settings
    user = "qs-http"
    env = snippet_env(settings, user, CREDITLINE_API=f"http://127.0.0.1:{settings.web_port}")
    output = run_snippet("curl (HTTP API)", ["bash", "docs/snippets/http-api.sh"], env)
    line = [line for line in output.splitlines() if line.strip()][-1]
    decision = LoanDecision.model_validate_json(line)
    assert (decision.request_id, decision.user_id) == (f"{user}.http.{env['RUN_ID']}", user)
    published = asyncio.run(read_to_end(settings, settings.topic_loan_decisions))
    assert [r.value for r in published if r.key == user.encode()] == [line.encode()]


def test_a_record_keyed_by_another_id_is_dead_lettered_key_mismatch(
    quickstart_worker: WorkerProcess,
) -> None:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: `make install` installs it")
    env = snippet_env(quickstart_worker.settings, "qs-wrong-key")
    output = run_snippet("wrong key", ["bash", "docs/snippets/wrong-key.sh"], env)
    assert "error.code=KEY_MISMATCH" in output
    assert f'"event_id": "qs-wrong-key.spend.{env["RUN_ID"]}"' in output


def _consumer(settings: Settings, state: Path, group: str) -> list[dict[str, object]]:
    env = snippet_env(
        settings, "unused", GROUP_ID=group, STATE_DB=str(state), IDLE_EXIT_SECONDS="4"
    )
    output = run_snippet(
        f"consumer {group}", [sys.executable, "docs/snippets/decision_consumer.py"], env
    )
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_the_idempotent_consumer_acts_once_per_request_and_follows_restatements(
    quickstart_worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = quickstart_worker.settings
    user = "qs-consumer"
    now = datetime.now(UTC)

    async def scenario() -> None:
        steady = [
            repayment(
                event_id=f"{user}.ok{i}",
                user_id=user,
                occurred_at=(now - timedelta(days=30 * (i + 1))).isoformat(),
            )
            for i in range(8)
        ]
        await publish(settings, steady)
        await wait_for(lambda: status_changes(settings, user), message="a first status")
        # A repayment 35 days past due, ten days ago, arrives only now: the past is restated.
        late = repayment(
            event_id=f"{user}.late",
            user_id=user,
            occurred_at=(now - timedelta(days=10)).isoformat(),
            amount_paid=0,
            days_past_due=35,
        )
        await publish(settings, [late])

        async def restated() -> bool:
            changes = await status_changes(settings, user)
            return changes[-1].reasons[0].code == "LATE_EVENT_RESTATED"

        await wait_for(restated, message="the restated status")
        request = LoanRequest(
            request_id=f"{user}.loan.1",
            user_id=user,
            requested_at=datetime.now(UTC),
            amount="500",
            term_months=6,
            displayed_status="open",
        )
        await publish(settings, [request, request])  # a redelivery: answered twice

    asyncio.run(scenario())
    state = tmp_path / "decisions.sqlite3"

    def wait_for_two_decisions() -> list[dict[str, object]]:
        # The consumer reads what is there; the second answer may still be on its way.
        deadline = time.monotonic() + 60
        seen: list[dict[str, object]] = []
        group = f"qs-consumer-{uuid.uuid4().hex[:6]}"
        while time.monotonic() < deadline:
            seen += _consumer(settings, state, group)
            if sum(a["action"] in ("decision", "duplicate") for a in seen) >= 2:
                return seen
        raise AssertionError(f"two answers not consumed: {seen}")

    actions = wait_for_two_decisions()
    answers = [a for a in actions if a.get("request_id") == f"{user}.loan.1"]
    assert [a["action"] for a in answers] == ["decision", "duplicate"], answers
    assert answers[0]["outcome"] == "declined"
    assert "FROZEN_PAST_DUE" in answers[0]["codes"]  # type: ignore[operator]
    assert answers[0]["evaluated_at"] is not None and answers[0]["status_since"] is not None
    statuses = [a for a in actions if a["action"] == "status" and a["user_id"] == user]
    assert statuses[-1]["restated"] is True and statuses[-1]["status"] == "frozen"
    assert datetime.fromisoformat(str(statuses[-1]["since"])) == now - timedelta(days=10)
    # Replayed from the start by another group, with the same state: nothing acted on twice.
    replay = _consumer(settings, state, f"qs-replay-{uuid.uuid4().hex[:6]}")
    assert [a["action"] for a in replay if a.get("request_id") == f"{user}.loan.1"] == [
        "duplicate",
        "duplicate",
    ]
