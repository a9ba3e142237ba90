"""``python -m bench.shadow``: what a candidate in shadow costs the live decision.

One real worker (role ``all``) on isolated topics of the local Kafka and Redis, a simulated
population folded first (``streams.devtools.simulation``: the four personas), then the same
request load — ``--rate`` requests/s from the population's users for ``--seconds`` — with
nothing in shadow (**baseline**) and with a candidate in shadow (**shadow**: installed with
``publish_shadow`` as ``policy apply --shadow`` does, removed with ``stop_shadow``), in
alternating rounds (baseline, shadow, shadow, baseline, …) on the same worker, so drift and
the machine's other load fall on both sides alike. Latency is end to end: request produced →
its decision consumed from the decision topic (p50/p95/p99/max), each side pooled over its
rounds, reported as the shadow side's ratio to the baseline of the same run.

It checks on the way that the candidate answered every request of the shadow rounds (the
worker's ``creditline_shadow_decisions_total``, none failed), and reports the worker's CPU
time per decision on each side and the machine's load average at the end of each round (the
figures are only as quiet as the cores). ``make bench-shadow`` runs it; results also go to
``bench-results/shadow-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.process import own_cpu_seconds
from bench.run import _measure, machine, percentile, summary_ms
from schemas.models import LoanRequest
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import producer_options
from streams.adapters.kafka.policies import publish_shadow, stop_shadow
from streams.core.policy import Policy, load_default_policy, parse_policy
from streams.core.scorecard import ScorecardDocument, parse_scorecard
from streams.core.shadow import Candidate
from streams.devtools.simulation import (
    DISPLAYED,
    persona_of,
    population_events,
    to_record,
    user_id_for,
)
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, free_port
from tests.support import produce

#: The users' prefix in the simulated population.
PREFIX = "sh"


def candidate_policy() -> Policy:
    """The default policy with the reopening threshold 575 instead of 590 (the candidate of
    docs/policy.md's "Changing strategy")."""
    doc = load_default_policy().model_dump(mode="json", exclude_none=True)
    doc["version"] = "bench-shadow-reopen-575"
    doc["status"]["thresholds"]["reopen_at"] = 575
    return parse_policy(json.dumps(doc))


def candidate_card() -> ScorecardDocument:
    """The shipped expert card under another version: a candidate scorecard."""
    from importlib import resources

    import yaml

    text = resources.files("streams.policies").joinpath("scorecard-expert.yaml").read_text()
    doc = yaml.safe_load(text)
    doc["version"] = "bench-shadow-expert"
    return parse_scorecard(json.dumps(doc))


def ratios(shadow: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Shadow ÷ baseline for each percentile."""
    return {
        key.replace("_ms", ""): round(shadow[key] / baseline[key], 3)
        for key in ("p50_ms", "p95_ms", "p99_ms")
        if baseline[key]
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    return own_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def load_average() -> float:
    """The machine's 1-minute load average (other work on the cores)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


async def _wait(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def shadow_cost(
    base: Settings,
    users: int,
    rate: float,
    seconds: float,
    rounds: int,
    kind: str,
    logs: Path,
) -> dict[str, Any]:
    """Run the scenario (see the module's docstring); the figures as a dict."""
    settings = isolated(base, partitions=12, web_port=free_port())
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    policy = candidate_policy() if kind in ("policy", "both") else None
    card = candidate_card() if kind in ("scorecard", "both") else None
    now = datetime.now(UTC)
    label = Candidate(policy, card, now).label  # as the worker names it in its metrics
    events = population_events(users, seed=7, now=now, prefix=PREFIX)
    records = [to_record(e) for e in events]
    await produce(settings, [(topics.topic_for(r.kind), r.key, r.value) for r in records])
    worker = WorkerProcess(settings, logs / "shadow-worker.log")
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=0)
    result: dict[str, Any] = {
        "users": users,
        "events": len(events),
        "rate": rate,
        "seconds_per_round": seconds,
        "rounds": rounds,
        "candidate": label,
    }
    try:
        worker.start()
        await _wait(
            lambda: worker.counter("creditline_records_applied_total") >= len(events),
            "the population to be folded",
            seconds=300,
        )
        await producer.start()
        rng = random.Random(11)
        phase = {"name": "warm-up"}

        def request(i: int) -> tuple[str, bytes, bytes]:
            index = rng.randrange(users)
            user = user_id_for(index, PREFIX)
            ask = LoanRequest(
                request_id=f"{phase['name']}-{i}",
                user_id=user,
                requested_at=datetime.now(UTC),
                amount=Decimal(rng.randint(10, 50) * 100),
                term_months=12,
                displayed_status=DISPLAYED[persona_of(index)],
            )
            return topics.loan_requests, user.encode(), ask.model_dump_json().encode()

        def decision_id(r: Any) -> bytes:
            return str(json.loads(r.value)["request_id"]).encode()

        async def measure(name: str, duration: float) -> list[float]:
            phase["name"] = name
            latencies, _, _ = await _measure(
                settings,
                producer,
                producer,  # requests only: no event load to share a producer with
                [],
                0,
                0,
                rate,
                duration,
                topics.loan_decisions,
                request,
                decision_id,
                {},
                [],
                key_of=lambda i: f"{name}-{i}".encode(),
            )
            return latencies

        def shadowed() -> float:
            return worker.counter("creditline_shadow_decisions_total")

        await measure("warm-up", min(10.0, seconds))
        sides: dict[str, list[float]] = {"baseline": [], "shadow": []}
        per_round: list[dict[str, Any]] = []
        sent = {"baseline": 0, "shadow": 0}
        cpu = {"baseline": 0.0, "shadow": 0.0}
        assert worker.process is not None
        pid = worker.process.pid
        installed = False
        for r in range(rounds):
            order = ("baseline", "shadow") if r % 2 == 0 else ("shadow", "baseline")
            row: dict[str, Any] = {"round": r + 1}
            for side in order:
                if side == "shadow" and not installed:
                    await publish_shadow(settings, policy=policy, card=card, applied_by="bench")
                    await _wait(
                        lambda: worker.counter("creditline_shadow_info", candidate=label) == 1.0,
                        "the worker to install the candidate",
                    )
                    installed = True
                elif side == "baseline" and installed:
                    await stop_shadow(settings, "bench")
                    await _wait(
                        lambda: worker.counter("creditline_shadow_info") == 0.0,
                        "the worker to stop the shadow",
                    )
                    installed = False
                before, cpu_before = shadowed(), cpu_seconds(pid)
                latencies = await measure(f"r{r + 1}-{side}", seconds)
                await asyncio.sleep(0.5)  # the candidate answers the last ones
                cpu[side] += cpu_seconds(pid) - cpu_before
                answered = shadowed() - before
                expected = len(latencies) if side == "shadow" else 0
                if answered < expected:
                    raise RuntimeError(
                        f"round {r + 1} {side}: {answered:.0f} shadow decisions for "
                        f"{len(latencies)} requests"
                    )
                sides[side] += latencies
                sent[side] += len(latencies)
                row[side] = summary_ms(latencies)
                row[side]["load_average"] = load_average()
            row["ratio"] = ratios(row["shadow"], row["baseline"])
            per_round.append(row)
        if installed:
            await stop_shadow(settings, "bench")
        failed = worker.counter("creditline_shadow_decisions_total", shadow="failed")
        if failed:
            raise RuntimeError(f"the candidate failed to answer {failed:.0f} requests")
        baseline, shadow = summary_ms(sides["baseline"]), summary_ms(sides["shadow"])
        result.update(
            {
                "baseline": baseline,
                "shadow": shadow,
                "ratio": ratios(shadow, baseline),
                "mean_ms": {
                    side: round(sum(v) / len(v) * 1000, 2) if v else None
                    for side, v in sides.items()
                },
                "worker_cpu_ms_per_decision": {
                    side: round(cpu[side] / sent[side] * 1000, 3) for side in sides
                },
                "median_of_round_ratios": {
                    q: round(percentile([row["ratio"][q] for row in per_round], 0.5), 3)
                    for q in ("p50", "p95", "p99")
                },
                "rounds_detail": per_round,
                "shadow_decisions": sent["shadow"],
            }
        )
        return result
    finally:
        await producer.stop()
        worker.stop()
        await cleanup(settings)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow", description=__doc__)
    parser.add_argument("--users", type=int, default=2000, help="simulated users folded first")
    parser.add_argument("--rate", type=float, default=200, help="requests/s")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each side's round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (one of each side per round)")
    parser.add_argument(
        "--candidate",
        choices=["policy", "scorecard", "both"],
        default="policy",
        help="what is in shadow: the default policy with reopen_at 575, the expert card, or both",
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 8 s, 500 users")
    args = parser.parse_args()
    if args.quick:
        args.users, args.seconds, args.rounds = 500, 8, 2
    out = Path("bench-results")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine(),
        "args": vars(args),
        "shadow": asyncio.run(
            shadow_cost(
                Settings(),
                args.users,
                args.rate,
                args.seconds,
                args.rounds,
                args.candidate,
                logs,
            )
        ),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"shadow-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    figures = results["shadow"]
    for side in ("baseline", "shadow"):
        s = figures[side]
        print(
            f"{side:>8}: {s['count']} decisions, p50 {s['p50_ms']} · p95 {s['p95_ms']} · "
            f"p99 {s['p99_ms']} · max {s['max_ms']} ms"
        )
    print(f"   ratio: {figures['ratio']} (median of rounds {figures['median_of_round_ratios']})")
    print(f"worker CPU per decision: {figures['worker_cpu_ms_per_decision']} ms")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
