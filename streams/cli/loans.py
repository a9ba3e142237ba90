"""Publishing and watching: simulate a population, ask for a loan, the live demo."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from schemas.models import DisplayedStatus, LineStatusChanged, LoanDecision, LoanRequest
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    pass
from streams.cli.root import (
    JsonOption,
    app,
    console,
    fail,
    invalid,
    run,
)


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


async def _count_decisions(
    settings: Settings, prefix: str, stats: SimulationStats, ready: asyncio.Event
) -> None:
    """Count the decisions for the simulated users as they arrive (until cancelled);
    ``ready`` is set once the positions are fixed, before the first request is sent."""
    from streams.adapters.kafka.read import Tail
    from streams.topics import Topics

    async with Tail(settings, [Topics.from_settings(settings).loan_decisions]) as tail:
        ready.set()
        async for batch in tail.batches():
            for record in batch:
                d = LoanDecision.model_validate_json(record.value)
                if d.user_id.startswith(prefix):
                    outcome = d.outcome.value
                    stats.decisions[outcome] = stats.decisions.get(outcome, 0) + 1
                    stats.overrides += int(d.overrides_displayed_status)


@app.command(rich_help_panel="Run")
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
    documented in docs/commands.md), with a live view of throughput and decisions."""
    from rich.live import Live

    settings = get_settings()
    stats = SimulationStats()

    async def main() -> None:
        positioned = asyncio.Event()
        counter = asyncio.create_task(_count_decisions(settings, prefix, stats, positioned))
        await positioned.wait()  # the counter reads from before the first request
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

    run(main())
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
    from streams.adapters.kafka.read import Tail
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    producer = await _producer(settings)
    try:
        # Positions are fixed before the request is sent, so its decision cannot be missed.
        async with Tail(settings, [topics.loan_decisions]) as tail:
            await producer.send_and_wait(
                topics.loan_requests,
                request.model_dump_json().encode(),
                key=request.user_id.encode(),
            )
            deadline = time.monotonic() + wait_seconds
            async for batch in tail.batches(timeout_ms=200):
                for record in batch:
                    decision = LoanDecision.model_validate_json(record.value)
                    if decision.request_id == request.request_id:
                        return decision
                if time.monotonic() >= deadline:
                    return None
        return None
    finally:
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


@app.command(rich_help_panel="Run")
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
        loan = LoanRequest.model_validate(
            {
                "request_id": f"cli-{uuid.uuid4().hex[:16]}",
                "user_id": user,
                "requested_at": datetime.now(UTC).isoformat(),
                # As on the wire: a decimal string (the contract's own rules apply).
                "amount": amount,
                "term_months": term,
                "displayed_status": displayed.value,
            }
        )
    except ValidationError as exc:
        invalid("request", exc)
    decision = run(_await_decision(get_settings(), loan, timeout))
    if decision is None:
        fail(f"no decision within {timeout:.0f}s: is a worker running? (`creditline worker`)")
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
    from streams.adapters.kafka.read import Tail
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    seen = 0
    deadline = time.monotonic() + duration if duration else None
    async with Tail(settings, [topics.loan_decisions, topics.line_status]) as tail:
        async for batch in tail.batches(timeout_ms=500):
            for record in batch:
                if record.topic == topics.line_status:
                    change = LineStatusChanged.model_validate_json(record.value)
                    console.print(status_line(change), soft_wrap=True)
                    continue
                d = LoanDecision.model_validate_json(record.value)
                seen += 1
                console.print(decision_line(d), soft_wrap=True)
                if stop_after and seen >= stop_after:
                    return seen
            if deadline is not None and time.monotonic() >= deadline:
                break
    return seen


@app.command(rich_help_panel="Run")
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
        run(main())
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
