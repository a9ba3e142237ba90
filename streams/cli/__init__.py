"""``creditline``: bring the local stack up, run the worker, publish events, ask for loans."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from schemas.models import DisplayedStatus, LineStatusChanged, LoanDecision, LoanRequest
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from streams.adapters.kafka.dead_letters import DeadLetterPage

app = typer.Typer(
    name="creditline",
    help="Real-time credit-line scorer: Kafka events → live scores in Redis → loan decisions.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schemas_app = typer.Typer(help="The wire contract's JSON Schema files.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
policy_app = typer.Typer(help="The run-time credit policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
dlq_app = typer.Typer(help="Dead-lettered records: inspect and re-drive.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
console = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def _quiet_libraries(ctx: typer.Context) -> None:
    """Commands other than the worker report Kafka failures themselves, in one line: the
    client library's own connection errors would only repeat them on stderr."""
    if ctx.invoked_subcommand != "worker":
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _fail(message: str, code: int = 1) -> None:
    # One line, however long: it is read in logs and terminals alike.
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _run(coro: Any) -> Any:
    from streams.adapters.kafka.admin import TopicError
    from streams.adapters.kafka.client import KafkaAccessError
    from streams.adapters.redis.client import REDIS_ERRORS, describe_redis_error
    from streams.adapters.redis.store import LayoutMismatch

    try:
        return asyncio.run(coro)
    except (TopicError, KafkaAccessError, LayoutMismatch) as exc:
        _fail(str(exc))
    except REDIS_ERRORS as exc:
        # One line, no traceback: redis-py's messages never carry the password, and the
        # description scrubs it anyway.
        _fail(describe_redis_error(get_settings(), exc))


# ---- local stack ---------------------------------------------------------------------------
@app.command()
def up(
    brokers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Kafka nodes (combined broker+controller). 3 gives replication factor 3 "
            "and min.insync.replicas 2; node i listens on the configured port + 2(i-1).",
        ),
    ] = 1,
) -> None:
    """Start a local Kafka (KRaft) and Redis on loopback unless reachable, and create topics."""
    from streams.adapters.kafka.admin import ensure_topics
    from streams.devtools.stack import LocalStack, StackError
    from streams.devtools.stack.kafka import replication_for

    settings = get_settings()
    stack = LocalStack(settings)
    try:
        console.print(stack.start_redis())
        console.print(stack.start_kafka(brokers))
    except StackError as exc:
        _fail(str(exc))
    if brokers > 1:
        # Topics get the cluster's replication unless it was configured explicitly.
        factor, min_isr = replication_for(brokers)
        defaults = {"topic_replication_factor": factor, "topic_min_insync_replicas": min_isr}
        unset = {k: v for k, v in defaults.items() if k not in settings.model_fields_set}
        settings = settings.model_copy(update=unset)
        servers = stack.kafka_cluster(brokers).bootstrap_servers
        console.print(
            f"workers and clients: CREDITLINE_KAFKA_BOOTSTRAP_SERVERS={servers} "
            f"CREDITLINE_TOPIC_REPLICATION_FACTOR={settings.topic_replication_factor} "
            f"CREDITLINE_TOPIC_MIN_INSYNC_REPLICAS={settings.topic_min_insync_replicas}"
        )
    states = _run(ensure_topics(settings))
    created = [s.name for s in states if s.created_now]
    console.print(f"topics ready ({len(states)}; created {len(created)})")


@app.command()
def down() -> None:
    """Stop the Kafka nodes and Redis that `creditline up` started (data is kept)."""
    from streams.devtools.stack import LocalStack

    stack = LocalStack(get_settings())
    for line in stack.stop_kafka():
        console.print(line)
    console.print(stack.stop("redis"))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Report whether Kafka and Redis are reachable and who started them; Redis must also
    answer PING as the configured user (TLS and credentials included)."""
    from streams.adapters.redis.client import redis_problem
    from streams.devtools.stack import LocalStack

    settings = get_settings()
    services = LocalStack(settings).status()
    redis_error = asyncio.run(redis_problem(settings))
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "address": s.address,
                        "reachable": s.reachable,
                        "pid": s.pid,
                        "managed": s.managed,
                        **({"error": redis_error} if s.name == "redis" else {}),
                    }
                    for s in services
                ]
            )
        )
    else:
        table = Table("service", "address", "reachable", "started by creditline", "log")
        for s in services:
            table.add_row(
                s.name,
                s.address,
                "[green]yes[/]" if s.reachable else "[red]no[/]",
                f"pid {s.pid}" if s.managed else "no",
                str(s.log) if s.managed else "",
            )
        console.print(table)
        console.print(f"redis url: {settings.redis_url_redacted}")
        console.print(f"kafka security: {settings.kafka_security_summary}", soft_wrap=True)
    if redis_error is not None:
        err.print(f"[bold red]error:[/] {redis_error}", soft_wrap=True)
    if redis_error is not None or not all(s.reachable for s in services):
        raise typer.Exit(1)


@app.command("redis-acl")
def redis_acl() -> None:
    """Print the ACL SETUSER line for creditline's Redis user: its key prefix and only the
    commands it sends. Add a password (`>secret`) before applying it."""
    from streams.adapters.redis.client import acl_setuser_line

    console.print(acl_setuser_line(get_settings()), markup=False, soft_wrap=True)


@app.command("kafka-acls")
def kafka_acls(
    operator: Annotated[
        str, typer.Option(help="The operators' principal (the worker's is the SASL user's).")
    ] = "User:creditline-ops",
    config: Annotated[
        str, typer.Option(help="--command-config file of a super user for kafka-acls.")
    ] = "admin.properties",
) -> None:
    """Print the `kafka-acls` commands granting the worker's principal, and the operators',
    exactly what creditline needs on the configured topics and groups."""
    from streams.devtools.kafka_acls import acl_rules, kafka_acls_commands

    settings = get_settings()
    rules = acl_rules(settings, operator)
    for line in kafka_acls_commands(rules, settings.kafka_bootstrap_servers, config):
        console.print(line, markup=False, soft_wrap=True)


@app.command()
def topics(as_json: JsonOption = False) -> None:
    """Create missing topics and list them with partition counts."""
    from streams.adapters.kafka.admin import ensure_topics
    from streams.topics import Topics

    settings = get_settings()
    states = _run(ensure_topics(settings))
    specs = {s.name: s for s in Topics.from_settings(settings).specs(settings)}
    rows = [
        {
            "topic": s.name,
            "partitions": s.partitions,
            "created": s.created_now,
            "retention.ms": specs[s.name].config.get("retention.ms"),
        }
        for s in states
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("topic", "partitions", "retention.ms", "created now")
    for row in rows:
        table.add_row(
            row["topic"],
            str(row["partitions"]),
            str(row["retention.ms"]),
            "yes" if row["created"] else "",
        )
    console.print(table)


# ---- worker --------------------------------------------------------------------------------
@app.command()
def worker(
    role: Annotated[
        str | None,
        typer.Option(help="all (default), events or decisions; see CREDITLINE_WORKER_ROLE."),
    ] = None,
) -> None:
    """Run the Faust worker (folds events, answers loan requests, serves /metrics)."""
    from faust.worker import Worker

    from streams.adapters.kafka.access import check_worker_access
    from streams.adapters.kafka.admin import adopt_loan_request_offsets, ensure_topics
    from streams.metrics import Metrics
    from streams.runtime.app import build_app
    from streams.runtime.tuning import tune_garbage_collector

    settings = get_settings()
    if role is not None:
        if role not in ("all", "events", "decisions"):
            _fail(f"--role must be all, events or decisions, not {role!r}")
        settings = settings.model_copy(update={"worker_role": role})
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # bulk folding yields the CPU to latency-bound work
    _run(ensure_topics(settings))
    # A missing ACL is one line now, not a worker waiting for ever to join its group.
    _run(check_worker_access(settings))
    _run(adopt_loan_request_offsets(settings))
    _run(_ensure_layout(settings))
    faust_app = build_app(settings, Metrics())
    tune_garbage_collector()
    Worker(faust_app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


async def _ensure_layout(settings: Settings) -> None:
    from streams.adapters.redis.store import RedisStore
    from streams.metrics import Metrics

    store = RedisStore.connect(settings, Metrics())
    try:
        await store.ensure_layout()
    finally:
        await store.close()


# ---- publishing ----------------------------------------------------------------------------
async def _producer(settings: Settings) -> Any:
    from aiokafka import AIOKafkaProducer

    from streams.adapters.kafka.client import producer_options, start_client

    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=5)
    await start_client(producer, settings)
    return producer


@dataclasses.dataclass
class SimulationStats:
    """What a simulation published and what came back, for the live view."""

    planned: int = 0
    published: int = 0
    requests: int = 0
    decisions: dict[str, int] = dataclasses.field(default_factory=dict)
    overrides: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    def table(self) -> Table:
        """The live view."""
        elapsed = max(1e-6, time.monotonic() - self.started)
        rate = self.published / elapsed
        left = max(0, self.planned - self.published)
        eta = f"{left / rate:.0f} s" if rate and left else "-"
        table = Table("simulation", "", title="creditline simulate (Ctrl-C stops)")
        table.add_row("published", f"{self.published:,} of {self.planned:,} history records")
        table.add_row("rate", f"{rate:,.0f} records/s, ETA {eta}")
        table.add_row("loan requests", f"{self.requests:,}")
        for outcome, count in sorted(self.decisions.items()):
            table.add_row(f"  {outcome}", f"{count:,}")
        table.add_row("overrides of displayed status", f"{self.overrides:,}")
        return table


async def _simulate(
    settings: Settings,
    users: int,
    seed: int,
    prefix: str,
    follow: bool,
    rate: float,
    stats: SimulationStats,
) -> int:
    from streams.devtools.simulation import population, requests
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    producer = await _producer(settings)
    now = datetime.now(UTC)
    try:
        history = list(population(users, seed, now, prefix))
        stats.planned = len(history)
        for record in history:
            await producer.send(topics.topic_for(record.kind), record.value, key=record.key)
            stats.published += 1
        await producer.flush()
        # Give the worker a moment to fold the histories before the requests arrive.
        await asyncio.sleep(2.0)
        sequence = 1
        while True:
            for record in requests(users, seed, datetime.now(UTC), prefix, sequence):
                await producer.send(topics.loan_requests, record.value, key=record.key)
                stats.requests += 1
                if follow:
                    await asyncio.sleep(1.0 / rate)
            await producer.flush()
            if not follow:
                break
            sequence += 1
    finally:
        await producer.stop()
    return stats.published + stats.requests


async def _count_decisions(settings: Settings, prefix: str, stats: SimulationStats) -> None:
    """Count the decisions for the simulated users as they arrive (until cancelled)."""
    from aiokafka import AIOKafkaConsumer

    from streams.adapters.kafka.client import client_options, start_client
    from streams.topics import Topics

    consumer = AIOKafkaConsumer(
        Topics.from_settings(settings).loan_decisions,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await start_client(consumer, settings)
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    d = LoanDecision.model_validate_json(record.value)
                    if d.user_id.startswith(prefix):
                        outcome = d.outcome.value
                        stats.decisions[outcome] = stats.decisions.get(outcome, 0) + 1
                        stats.overrides += int(d.overrides_displayed_status)
    finally:
        await consumer.stop()


@app.command()
def simulate(
    users: Annotated[int, typer.Option(help="Users to simulate (personas in rotation).")] = 200,
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed publishes the same population.")
    ] = 7,
    prefix: Annotated[str, typer.Option(help="Prefix of the simulated user ids.")] = "user",
    follow: Annotated[bool, typer.Option(help="Keep publishing loan requests.")] = False,
    rate: Annotated[float, typer.Option(help="Requests per second with --follow.")] = 5.0,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep counting decisions after publishing.")
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Publish a synthetic population's history, then one loan request per user (personas are
    documented in the README), with a live view of throughput and decisions."""
    from rich.live import Live

    settings = get_settings()
    stats = SimulationStats()

    async def main() -> None:
        counter = asyncio.create_task(_count_decisions(settings, prefix, stats))
        await asyncio.sleep(0.5)  # the counter is positioned before the first request
        try:
            show = not as_json and console.is_terminal
            view = Live(stats.table(), console=console, refresh_per_second=4) if show else None
            with view if view is not None else contextlib.nullcontext():
                publishing = asyncio.create_task(
                    _simulate(settings, users, seed, prefix, follow, rate, stats)
                )
                deadline: float | None = None
                while True:
                    if view is not None:
                        view.update(stats.table())
                    if publishing.done():
                        publishing.result()  # re-raise publishing errors
                        deadline = deadline or time.monotonic() + wait
                        done = sum(stats.decisions.values()) >= stats.requests
                        if done or time.monotonic() > deadline:
                            break
                    await asyncio.sleep(0.25)
                if view is not None:
                    view.update(stats.table())
        finally:
            counter.cancel()
            await asyncio.gather(counter, return_exceptions=True)

    _run(main())
    summary = {
        "published": stats.published,
        "requests": stats.requests,
        "decisions": stats.decisions,
        "overrides": stats.overrides,
        "seconds": round(time.monotonic() - stats.started, 2),
    }
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(
            f"published {stats.published} events and {stats.requests} requests; decisions "
            f"{stats.decisions or '{}'} ({stats.overrides} overrode the displayed status)"
        )


async def _await_decision(
    settings: Settings, request: LoanRequest, wait_seconds: float
) -> LoanDecision | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.adapters.kafka.client import client_options, start_client
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    producer = await _producer(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    try:
        await start_client(consumer, settings)
        partitions = await producer.partitions_for(topics.loan_decisions)
        tps = [TopicPartition(topics.loan_decisions, p) for p in sorted(partitions)]
        consumer.assign(tps)
        # Positions are fixed before the request is sent, so its decision cannot be missed.
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        await producer.send_and_wait(
            topics.loan_requests, request.model_dump_json().encode(), key=request.user_id.encode()
        )
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    decision = LoanDecision.model_validate_json(record.value)
                    if decision.request_id == request.request_id:
                        return decision
        return None
    finally:
        await consumer.stop()
        await producer.stop()


def _decision_table(decision: LoanDecision) -> Table:
    colour = {"approved": "green", "partially_approved": "yellow", "declined": "red"}.get(
        decision.outcome.value, "cyan"
    )
    table = Table(show_header=False, title=f"decision for {decision.request_id}")
    table.add_row("outcome", f"[bold {colour}]{decision.outcome.value}[/]")
    table.add_row("amount", f"{decision.approved_amount} of {decision.requested_amount}")
    table.add_row("score", f"{decision.score} (as of {decision.score_as_of})")
    table.add_row(
        "status",
        f"displayed {decision.displayed_status.value} → effective "
        f"{decision.effective_status.value}"
        + (" [bold](overridden)[/]" if decision.overrides_displayed_status else ""),
    )
    table.add_row("limit", f"{decision.available_limit} available of {decision.credit_limit}")
    for reason in decision.reasons:
        table.add_row(reason.code, reason.text)
    table.add_row("versions", f"policy {decision.policy_version}, scorer {decision.scorer_version}")
    return table


@app.command()
def request(
    user: Annotated[str, typer.Argument(help="The user id.")],
    amount: Annotated[str, typer.Argument(help="Amount, e.g. 2500 or 2500.00.")],
    displayed: Annotated[
        DisplayedStatus, typer.Option(help="Status the app displayed.")
    ] = DisplayedStatus.UNKNOWN,
    term: Annotated[int, typer.Option(help="Term in months (1–36).")] = 12,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the decision.")] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Publish one loan request and print its decision (a worker must be running)."""
    from pydantic import ValidationError

    try:
        loan = LoanRequest(
            request_id=f"cli-{uuid.uuid4().hex[:16]}",
            user_id=user,
            requested_at=datetime.now(UTC),
            amount=Decimal(amount),
            term_months=term,
            displayed_status=displayed,
        )
    except (ValidationError, InvalidOperation) as exc:
        _fail(f"invalid request: {exc}")
        return
    decision = _run(_await_decision(get_settings(), loan, timeout))
    if decision is None:
        _fail(f"no decision within {timeout:.0f}s: is a worker running? (`creditline worker`)")
        return
    if as_json:
        console.print_json(decision.model_dump_json())
    else:
        console.print(_decision_table(decision))


# ---- demo ----------------------------------------------------------------------------------
_COLOURS = {"approved": "green", "partially_approved": "yellow", "declined": "red"}


def decision_line(d: LoanDecision) -> str:
    """One decision as a line of the live view (rich markup)."""
    colour = _COLOURS.get(d.outcome.value, "cyan")
    first = d.reasons[0].code if d.reasons else "-"
    more = f" +{len(d.reasons) - 1}" if len(d.reasons) > 1 else ""
    flag = " [bold magenta]overrides displayed[/]" if d.overrides_displayed_status else ""
    return (
        f"{d.user_id:<15} shown {d.displayed_status.value:<7} live {d.effective_status.value:<6} "
        f"{d.score} [{colour}]{d.outcome.value:<18}[/]{d.approved_amount:>9}/"
        f"{d.requested_amount:<9} {first}{more}{flag}"
    )


def status_line(change: LineStatusChanged) -> str:
    """One line-status change as a line of the live view (rich markup)."""
    before = change.previous_status.value if change.previous_status else "new"
    first = change.reasons[0].code if change.reasons else "-"
    return (
        f"{change.user_id:<15} [bold blue]line {before} → {change.status.value}[/] "
        f"score {change.score} limit {change.credit_limit} ({first})"
    )


async def _watch_decisions(
    settings: Settings, duration: float | None, stop_after: int | None
) -> int:
    from aiokafka import AIOKafkaConsumer

    from streams.adapters.kafka.client import client_options, start_client
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    consumer = AIOKafkaConsumer(
        topics.loan_decisions,
        topics.line_status,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await start_client(consumer, settings)
    seen = 0
    deadline = time.monotonic() + duration if duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.topic == topics.line_status:
                        change = LineStatusChanged.model_validate_json(record.value)
                        console.print(status_line(change), soft_wrap=True)
                        continue
                    d = LoanDecision.model_validate_json(record.value)
                    seen += 1
                    console.print(decision_line(d), soft_wrap=True)
                    if stop_after and seen >= stop_after:
                        return seen
    finally:
        await consumer.stop()
    return seen


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="Users to simulate.")] = 40,
    duration: Annotated[float, typer.Option(help="Seconds to run (0 = until Ctrl-C).")] = 0,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 7,
) -> None:
    """Start a worker, simulate a population, and show decisions as they arrive."""
    settings = get_settings()
    log_path = settings.stack_dir / "logs" / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"demo{uuid.uuid4().hex[:4]}"
    with log_path.open("ab") as log:
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    console.print(f"worker started (pid {worker_proc.pid}, log {log_path}); waiting for it…")

    async def main() -> None:
        await asyncio.sleep(8.0)  # consumer group join + partition assignment
        watcher = asyncio.create_task(_watch_decisions(settings, duration or None, None))
        await asyncio.sleep(1.0)
        simulator = asyncio.create_task(
            _simulate(settings, users, seed, prefix, True, 2.0, SimulationStats())
        )
        try:
            await watcher
        finally:
            simulator.cancel()
            await asyncio.gather(simulator, return_exceptions=True)

    try:
        _run(main())
    except KeyboardInterrupt:
        pass
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()
        console.print("worker stopped")


# ---- inspection ----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


@app.command()
def inspect(
    user: Annotated[str, typer.Argument(help="The user id.")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="RFC 3339 time (default now).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a user's standing at a moment: features, points per attribute, score, segment,
    limit, status (with its history) and reasons — what a decision at that moment would use."""
    from streams.adapters.redis.store import RedisStore
    from streams.core.decision import status_reasons
    from streams.core.timeline import at_time, needs_ledger_at, standing
    from streams.metrics import Metrics
    from streams.service.shell import decode_limits

    settings = get_settings()
    at = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)
    if at.tzinfo is None:
        _fail("--as-of needs an offset, e.g. 2026-01-01T00:00:00Z")
    horizon = decode_limits(settings).horizon

    async def load() -> Any:
        store = RedisStore.connect(settings, Metrics())
        try:
            stored = await store.read_user(user)
            ledger = None
            if needs_ledger_at(stored.checkpoint, stored.latest_event_at, at, horizon):
                ledger = await store.read_ledger(user)
            return stored, ledger, await _policy_timeline(settings)
        finally:
            await store.close()

    stored, ledger, timelines = _run(load())
    checkpoint = at_time(stored.checkpoint, ledger, timelines, at, horizon)
    a = standing(checkpoint, timelines)
    if a is None or checkpoint.state is None:
        _fail(f"no state for user {user} at {at.isoformat()}")
        return
    policy = timelines.at(a.features.at)
    doc: dict[str, Any] = {
        "user_id": user,
        "as_of": at.isoformat(),
        "reviewed_at": a.features.at.isoformat(),
        "next_review": (
            checkpoint.trajectory.next_review.isoformat()
            if checkpoint.trajectory.next_review
            else None
        ),
        "policy_version": a.policy_version,
        "score": a.score,
        "status": a.status.value,
        "status_since": a.line.since.isoformat(),
        "status_history": [
            {"status": c.status.value, "since": c.since.isoformat(), "settled": c.settled}
            for c in checkpoint.trajectory.changes
        ],
        "segment": a.segment,
        "exception": a.exception.code if a.exception else None,
        "thresholds": {
            "close_below": a.thresholds.close_below,
            "reopen_at": a.thresholds.reopen_at,
        },
        "reasons": [r.model_dump() for r in status_reasons(a, policy, settings.reason_language)],
        "credit_limit": str(a.credit_limit),
        "available_limit": str(a.available_limit),
        "score_as_of": a.score_as_of.isoformat(),
        "points": dict(a.points),
        "features": {
            f.name: _plain(getattr(a.features, f.name))
            for f in dataclasses.fields(a.features)
            if f.name not in ("last_delinquency_at",)
        },
        "events_applied": checkpoint.state.events_applied,
    }
    if as_json:
        console.print_json(json.dumps(doc))
        return
    table = Table(
        "attribute",
        "points",
        title=f"{user}: score {a.score}, {a.status.value} since {a.line.since:%Y-%m-%d}, "
        f"segment {a.segment}, limit {a.credit_limit} ({a.available_limit} available), "
        f"policy {a.policy_version}, reviewed {a.features.at:%Y-%m-%d %H:%M}",
    )
    for name, points in a.points.items():
        table.add_row(name, str(points))
    console.print(table)
    features = Table("feature", "value")
    for name, value in doc["features"].items():
        features.add_row(name, str(value))
    console.print(features)
    history = Table("status", "since", title="status history (event time)")
    for change in doc["status_history"]:
        history.add_row(change["status"], change["since"])
    console.print(history)
    for r in doc["reasons"]:
        console.print(f"[bold]{r['code']}[/] {r['text']}")


@app.command()
def explain(
    request_ids: Annotated[
        list[str] | None, typer.Argument(help="Request ids (none with --all).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every decision on the decisions topic.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-derive published decisions from the logs (the user's events and the policy history,
    as of the instant each was judged at), say whether each equals the published one field
    by field, and show the review-by-review trajectory that led to it. Exit 1 on a mismatch."""
    from rich.markup import escape

    from streams.service.explain import explain as run_explain

    if not request_ids and not everything:
        _fail("say which decisions: REQUEST_ID ... or --all", 2)
    settings = get_settings()
    wanted = None if everything else set(request_ids or ())
    results = _run(run_explain(settings, wanted))
    if wanted is not None:
        missing = wanted - {r.request_id for r in results}
        if missing:
            _fail(f"no published decision for {sorted(missing)}")
    mismatched = [r for r in results if r.rederived is not None and not r.matches]
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "decisions": len(results),
                    "matching": sum(r.matches for r in results),
                    "mismatching": len(mismatched),
                    "not_rederivable": sum(r.rederived is None for r in results),
                    "explanations": [
                        {
                            "request_id": r.request_id,
                            "matches": r.matches,
                            "differences": r.differences,
                            "note": r.note,
                            "events": r.events,
                            "late_events": r.late_events,
                            "published": r.published.model_dump(mode="json"),
                            "rederived": r.rederived.model_dump(mode="json")
                            if r.rederived
                            else None,
                            "trajectory": [
                                {
                                    "at": step.at.isoformat(),
                                    "score": step.score,
                                    "segment": step.segment,
                                    "status": step.status.status.value,
                                    "status_since": step.status.since.isoformat(),
                                    "policy_version": step.policy_version,
                                    "events": step.events,
                                }
                                for step in r.trace
                            ],
                        }
                        for r in results
                    ],
                }
            )
        )
    else:
        for r in results if wanted is not None else mismatched:
            verdict = "[green]matches[/]" if r.matches else "[red]differs[/]"
            if r.rederived is None:
                verdict = f"[yellow]not re-derivable[/]: {escape(r.note)}"
            console.print(
                f"[bold]{escape(r.request_id)}[/] ({escape(r.published.user_id)}): {verdict}; "
                f"{r.events} events up to {r.published.evaluated_at}",
                soft_wrap=True,
            )
            if r.rederived is not None:
                table = Table("field", "published", "re-derived", "")
                a = r.published.model_dump(mode="json")
                b = r.rederived.model_dump(mode="json")
                for name in a:
                    same = a[name] == b.get(name)
                    table.add_row(
                        name,
                        escape(json.dumps(a[name], ensure_ascii=False)),
                        escape(json.dumps(b.get(name), ensure_ascii=False)),
                        "" if same else "[red]≠[/]",
                    )
                console.print(table)
            if r.late_events:
                console.print(
                    f"{len(r.late_events)} events up to that instant arrived after the decision "
                    "(its answer would be restated today)"
                )
            if r.trace:
                steps = Table("review at", "score", "segment", "status", "since", "policy")
                for step in r.trace[-30:]:
                    steps.add_row(
                        step.at.isoformat(),
                        str(step.score),
                        step.segment,
                        step.status.status.value,
                        step.status.since.isoformat(),
                        step.policy_version,
                    )
                console.print(steps)
        console.print(
            f"{len(results)} decisions: {sum(r.matches for r in results)} re-derived exactly, "
            f"{len(mismatched)} differ, {sum(r.rederived is None for r in results)} not "
            "re-derivable"
        )
    if mismatched:
        raise typer.Exit(1)


# ---- replay --------------------------------------------------------------------------------
@app.command()
def replay(
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Delete every creditline key in Redis first (stop the workers): after an "
            "upgrade to a new key layout, or to start over.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild every user's state in Redis from the input topics (e.g. after Redis lost its
    data). Idempotent and safe while workers run; announces nothing again."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from streams.runtime.tuning import tune_garbage_collector
    from streams.service.replay import replay as run_replay

    tune_garbage_collector()
    settings = get_settings()
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} records/s"),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as progress:
        task = progress.add_task("replay", total=None, rate="-")
        started = time.monotonic()

        def on_progress(done: int) -> None:
            rate = done / max(1e-6, time.monotonic() - started)
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        async def main() -> Any:
            from streams.adapters.redis.store import RedisStore
            from streams.metrics import Metrics

            store = RedisStore.connect(settings, Metrics())
            try:
                if rebuild:
                    await store.delete_everything()
                await store.ensure_layout()
            finally:
                await store.close()
            timelines = await _policy_timeline(settings)
            return await run_replay(
                settings,
                timelines,
                on_total=lambda total: progress.update(task, total=total),
                on_progress=on_progress,
            )

        report = _run(main())
    summary = {
        "records": report.records,
        "applied": report.applied,
        "duplicate": report.duplicate,
        "rejected": report.rejected,
        "per_topic": report.per_topic,
        "decisions_restored": report.decisions_restored,
        "decisions_matching": report.decisions_matching,
        "decisions_differing": report.decisions_differing,
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(
            f"replayed {report.records} records: {report.applied} applied, "
            f"{report.duplicate} already present, {report.rejected} rejected; "
            f"{report.decisions_restored} published decisions remembered again, "
            f"{report.decisions_matching} re-derived exactly, {report.decisions_differing} "
            "differ"
        )


# ---- dead letters --------------------------------------------------------------------------
# Everything read from the dead-letter topic is a producer's: it is printed through
# `_inert` (control characters escaped, never interpreted as markup), and JSON output is
# ASCII (`ensure_ascii`: bidi overrides and C1 controls as \u escapes, not raw).
def _preview(value: bytes | None, width: int = 60) -> str:
    if value is None:
        return "(null)"
    text = value[:width].decode("utf-8", errors="backslashreplace")
    return text + (f"… ({len(value)} bytes)" if len(value) > width else "")


def _inert(text: str) -> Text:
    """Producer-controlled text, inert: escaped controls, no markup, no emoji codes."""
    from streams.core.inert import inert

    return Text(inert(text))


def _print_json_ascii(doc: Any) -> None:
    console.print_json(json.dumps(doc), ensure_ascii=True)


SinceOption = Annotated[
    str | None,
    typer.Option(
        help="Only dead letters rejected since then: a duration back from now (30m, 2h, 7d) "
        "or an RFC 3339 time (2026-11-30T08:00:00Z). Default: the whole topic."
    ),
]
LimitOption = Annotated[
    int,
    typer.Option(
        min=1, help="Read only the newest this many dead letters of that window (per call)."
    ),
]


def _since(text: str | None) -> datetime | None:
    from rich.markup import escape

    from streams.core.dead_letters import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, datetime.now(UTC))
    except ValueError as exc:
        _fail(escape(f"--since: {exc}"))
        raise AssertionError("unreachable") from exc  # pragma: no cover


def _window(page: DeadLetterPage) -> str:
    """Which dead letters were read, in words."""
    since = f" since {page.since.isoformat()}" if page.since else ""
    return f"the newest {page.read} of {page.in_window} dead letters{since}"


def _not_read_note(page: DeadLetterPage) -> None:
    """Say so on stderr when older dead letters of the window were left unread."""
    if page.not_read:
        since = f" since {page.since.isoformat()}" if page.since else ""
        err.print(
            f"{page.not_read} older dead letters{since} were not read: raise --limit or "
            "narrow --since",
            markup=False,
            highlight=False,
        )


@dlq_app.command("list")
def dlq_list(
    code: Annotated[str | None, typer.Option(help="Only this reject code.")] = None,
    since: SinceOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead-lettered records with their reasons and where they came from (a bounded read: the
    newest --limit of those rejected since --since)."""
    from collections import Counter

    from schemas import dead_letter
    from streams.adapters.kafka.dead_letters import read_dead_letters

    settings = get_settings()
    page = _run(
        read_dead_letters(settings, since=_since(since), limit=limit, code=code, values=False)
    )
    letters = page.letters
    counts = Counter(letter.code for letter in letters)
    rows = [
        {
            "id": x.id,
            "code": x.code,
            "source": x.source,
            "message": x.header(dead_letter.HEADER_ERROR_MESSAGE),
            "rejected_at": x.header(dead_letter.HEADER_REJECTED_AT),
            "bytes": x.size,
        }
        for x in letters
    ]
    if as_json:
        _print_json_ascii(
            {
                "total": len(letters),
                "by_code": counts,
                "records": rows,
                "read": page.read,
                "in_window": page.in_window,
                "not_read": page.not_read,
                "since": page.since.isoformat() if page.since else None,
                "limit": limit,
            }
        )
        return
    title = f"{len(letters)} dead letters" + (f" with code {code}" if code else "")
    table = Table(
        "id",
        "code",
        "source",
        "message",
        "rejected at",
        "bytes",
        title=_inert(f"{title}, among {_window(page)}"),
    )
    for row in rows:
        table.add_row(
            *(_inert(str(row[k])) for k in ("id", "code", "source", "message", "rejected_at")),
            str(row["bytes"]),
        )
    console.print(table)
    console.print(
        _inert("by code: " + ", ".join(f"{c} {n}" for c, n in counts.most_common())),
        highlight=False,
    )
    _not_read_note(page)


def _letter_id(text: str) -> tuple[int, int]:
    """``partition:offset`` as two integers (or a clear error)."""
    from rich.markup import escape

    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        _fail(escape(f"{text!r} is not a dead-letter id (partition:offset, e.g. 3:1207)"))
    return int(partition), int(offset)


@dlq_app.command("show")
def dlq_show(
    record_id: Annotated[str, typer.Argument(help="partition:offset in the dead-letter topic.")],
    as_json: JsonOption = False,
) -> None:
    """One dead letter: its headers and value (read at its offset, nothing else)."""
    from streams.adapters.kafka.dead_letters import read_dead_letters_at

    found = _run(read_dead_letters_at(get_settings(), [_letter_id(record_id)]))
    letter = next(iter(found.values()), None)
    if letter is None:
        _fail(f"no dead letter {record_id}; `creditline dlq list` shows the ids")
        return
    headers = [(k, v.decode(errors="backslashreplace")) for k, v in letter.headers]
    doc = {
        "id": letter.id,
        "key": _preview(letter.key, 200),
        "value": _preview(letter.value, 2000),
        "headers": dict(headers),
    }
    if as_json:
        _print_json_ascii(doc)
        return
    table = Table(show_header=False, title=_inert(f"dead letter {letter.id}"))
    for name, value in headers:  # every one, also repeated names
        table.add_row(_inert(name), _inert(value))
    table.add_row("key", _inert(doc["key"]))
    table.add_row("value", _inert(doc["value"]))
    console.print(table)


def _read_fixes(path: Path) -> dict[str, bytes]:
    """Corrected values by dead-letter id, from JSON lines ``{"id": "p:o", "value": {...}}``."""
    fixes: dict[str, bytes] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
        return fixes
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            fixes[str(entry["id"])] = json.dumps(entry["value"]).encode()
        except (ValueError, KeyError, TypeError):
            _fail(f'{path} line {number}: expected {{"id": "p:o", "value": {{...}}}}')
    return fixes


@dlq_app.command("redrive")
def dlq_redrive(
    code: Annotated[str | None, typer.Option(help="Re-publish the records with this code.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Re-publish every dead letter read.")
    ] = False,
    fixed: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines {"id": "p:o", "value": {...}}: publish these '
            "corrected values (only those records, read at their offsets)."
        ),
    ] = None,
    since: SinceOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Re-publish dead letters to their source topics, as they were or corrected. Only this
    application's input topics are written; other sources are skipped and reported."""
    from rich.progress import Progress

    from streams.adapters.kafka.dead_letters import read_dead_letters, read_dead_letters_at, redrive
    from streams.topics import Topics

    if not (code or everything or fixed):
        _fail("say which records: --code CODE, --all, or --fixed FILE")
    settings = get_settings()
    replacements: dict[str, bytes] = {}
    page: DeadLetterPage | None = None
    if fixed is not None:
        replacements = _read_fixes(fixed)
        found = _run(read_dead_letters_at(settings, [_letter_id(i) for i in replacements]))
        letters = [found[i] for i in replacements if i in found]
        unknown = set(replacements) - set(found)
        if unknown:
            _fail(f"no dead letters with ids {sorted(unknown)}")
    else:
        page = _run(read_dead_letters(settings, since=_since(since), limit=limit, code=code))
        letters = page.letters
    with Progress(console=err, disable=as_json) as progress:
        task = progress.add_task("re-driving", total=len(letters))
        report = _run(
            redrive(
                settings,
                letters,
                replacements=replacements,
                on_progress=lambda done: progress.update(task, completed=done),
            )
        )
    if as_json:
        doc: dict[str, Any] = {
            "redriven": report.total,
            "topics": dict(report.sent),
            "skipped": len(report.skipped),
            "skipped_ids": report.skipped,
        }
        if page is not None:
            doc.update(read=page.read, in_window=page.in_window, not_read=page.not_read)
        console.print_json(json.dumps(doc), ensure_ascii=True)
        return
    where = ", ".join(f"{topic} {n}" for topic, n in sorted(report.sent.items()))
    console.print(
        f"re-published {report.total} records" + (f": {where}" if where else ""),
        markup=False,
        highlight=False,
    )
    if report.skipped:
        err.print(
            f"skipped {len(report.skipped)} dead letters whose source is not an input topic of "
            f"this application (only {', '.join(Topics.from_settings(settings).inputs)} are "
            f"written): {', '.join(report.skipped)}",
            markup=False,
            highlight=False,
        )
    if page is not None:
        _not_read_note(page)


# ---- policy --------------------------------------------------------------------------------
async def _policy_timeline(settings: Settings) -> Any:
    """Every valid policy version on the policy topic with when it takes effect (the shipped
    default before the first)."""
    from streams.adapters.kafka.policies import read_policy_timeline
    from streams.core.policy import load_default_policy

    return await read_policy_timeline(settings, load_default_policy())


async def _active_policy(settings: Settings) -> Any:
    """The policy in force now."""
    return (await _policy_timeline(settings)).at(datetime.now(UTC))


def _read_policy_file(path: Path) -> Any:
    from streams.core.policy import InvalidPolicy, parse_policy

    try:
        return parse_policy(path.read_text())
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    except InvalidPolicy as exc:
        _fail(f"{path} is not a valid policy; nothing was applied:\n{exc}")


@policy_app.command("validate")
def policy_validate(file: Annotated[Path, typer.Argument(help="YAML or JSON policy.")]) -> None:
    """Check a policy document without applying it."""
    policy = _read_policy_file(file)
    console.print(f"{file}: valid policy {policy.version}")


@policy_app.command("apply")
def policy_apply(
    file: Annotated[Path, typer.Argument(help="YAML or JSON policy.")],
    by: Annotated[str | None, typer.Option("--by", help="Who applies it (audit).")] = None,
    comment: Annotated[str | None, typer.Option(help="Why (audit).")] = None,
    effective_from: Annotated[
        str | None,
        typer.Option(
            "--effective-from",
            help="RFC 3339 time it takes effect (default: CREDITLINE_POLICY_ACTIVATION_SECONDS "
            "from now). Never in the past: a policy does not rewrite history.",
        ),
    ] = None,
) -> None:
    """Validate a policy and publish it; running workers switch to it, without a restart, at
    the instant it takes effect (every status and decision from then on follows it)."""
    from streams.adapters.kafka.policies import publish_policy
    from streams.core.policy import InvalidPolicy

    policy = _read_policy_file(file)
    effective = None
    if effective_from is not None:
        try:
            effective = datetime.fromisoformat(effective_from)
        except ValueError:
            _fail(f"--effective-from is not an RFC 3339 time: {effective_from!r}", 2)
        if effective is not None and effective.tzinfo is None:
            _fail("--effective-from needs an offset, e.g. 2026-12-01T00:00:00+08:00", 2)
    try:
        published = _run(publish_policy(get_settings(), policy, by, comment, effective))
    except InvalidPolicy as exc:
        _fail(str(exc))
        return
    when = published.effective_from.isoformat()
    if not published.new:
        console.print(f"policy {policy.version} was already applied (in effect from {when})")
        return
    console.print(
        f"applied policy {policy.version} (offset {published.offset}), in effect from {when}"
    )


@policy_app.command("show")
def policy_show(as_json: JsonOption = False) -> None:
    """Print the active policy (the latest valid version applied, else the default)."""
    from streams.core.policy import policy_json

    policy = _run(_active_policy(get_settings()))
    if as_json:
        console.print_json(policy_json(policy))
        return
    import yaml

    console.print(f"# active policy {policy.version}")
    console.print(
        yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
        markup=False,
    )


@policy_app.command("history")
def policy_history(as_json: JsonOption = False) -> None:
    """Every policy version applied, oldest first, with who and when; rejected ones too."""
    from streams.adapters.kafka.policies import read_policy_history

    records = _run(read_policy_history(get_settings()))
    rows = [
        {
            "offset": r.offset,
            "version": r.version,
            "applied_at": r.applied_at.isoformat() if r.applied_at else None,
            "effective_from": r.effective_from.isoformat() if r.effective_from else None,
            "applied_by": r.applied_by,
            "comment": r.comment,
            "valid": r.policy is not None,
            "problems": list(r.problems),
        }
        for r in records
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("offset", "version", "applied at", "in effect from", "by", "comment", "valid")
    for row in rows:
        table.add_row(
            str(row["offset"]),
            str(row["version"]),
            str(row["applied_at"] or ""),
            str(row["effective_from"] or ""),
            str(row["applied_by"] or ""),
            str(row["comment"] or ""),
            "yes" if row["valid"] else "[red]no[/]",
        )
    console.print(table if rows else "no policy applied yet: the default policy is active")


# ---- schemas -------------------------------------------------------------------------------
@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option(help="Where to write the files.")] = Path(
        "schemas/json"
    ),
    check: Annotated[bool, typer.Option(help="Only check that the files are up to date.")] = False,
) -> None:
    """Write (or check) one JSON Schema file per wire model."""
    from schemas.export import export_schemas

    stale = export_schemas(directory, check=check)
    if check and stale:
        _fail(f"out of date: {', '.join(stale)}; run `creditline schemas export`")
    console.print("schemas up to date" if check else f"wrote schemas to {directory}")


def main() -> None:
    """Entry point of the ``creditline`` command."""
    from pydantic import ValidationError

    from streams.settings import settings_problems

    try:
        app()
    except ValidationError as exc:
        # Raised outside any command's context (by get_settings), so not via _fail.
        err.print(f"[bold red]error:[/] invalid settings: {settings_problems(exc)}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
