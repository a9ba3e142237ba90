"""A Redis primary failover with a replica, the worker reaching Redis through a proxy that
stands in for a managed failover endpoint (a DNS name re-pointed at the promoted replica).

Replication is asynchronous: the replica here falls behind first (its link to the primary is
cut), so the primary acknowledges writes the replica never gets; then the primary is
SIGKILLed, the replica promoted (``REPLICAOF NO ONE``), the endpoint re-pointed at it and a
new replica attached. With ``CREDITLINE_REDIS_MIN_REPLICAS=1`` no event whose write only the
dead primary had was committed, so the state after the failover is the reference; with 0
(the default) those events are lost for good — their offsets were committed — until
``creditline replay`` folds the topics again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.models import Outcome
from streams.devtools.simulation import population_events
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import isolated
from tests.e2e.conftest import WorkerProcess, free_port, running_worker
from tests.e2e.test_redis_faults import run_replay
from tests.fault_checks import (
    as_records,
    ask,
    assert_every_record_accounted,
    codes,
    wait_committed,
)
from tests.redis_nodes import RedisServer
from tests.redis_replicas import kill, promote, redis_server, wait_in_sync
from tests.support import (
    assert_redis_matches_reference,
    assert_trajectories_match_reference,
    committed_lag,
    produce,
    redis_states,
    wait_applied,
)
from tests.toxiproxy import Proxy, running_toxiproxy


@pytest.mark.slow
@pytest.mark.parametrize("min_replicas", [1, 0], ids=["min_replicas_1", "min_replicas_0"])
async def test_a_failover_to_a_lagging_replica(
    base_settings: Settings, tmp_path: Path, min_replicas: int
) -> None:
    servers: list[RedisServer] = []
    with running_toxiproxy(tmp_path / "toxiproxy") as toxiproxy:
        try:
            primary = redis_server(tmp_path / "primary")
            servers.append(primary)
            link = toxiproxy.proxy("replication", f"127.0.0.1:{primary.port}")
            replica = redis_server(tmp_path / "replica", replica_of=link.address)
            servers.append(replica)
            wait_in_sync(primary)
            endpoint = toxiproxy.proxy("endpoint", f"127.0.0.1:{primary.port}")
            settings = isolated(
                base_settings,
                partitions=12,
                web_port=free_port(),
                redis_url=f"redis://{endpoint.address}/0",
                redis_min_replicas=min_replicas,
                score_unavailable_wait_seconds=2.0,
            )
            await failover(settings, tmp_path, servers, link, endpoint, min_replicas)
        finally:
            for server in servers:
                server.stop()


async def failover(
    settings: Settings,
    tmp_path: Path,
    servers: list[RedisServer],
    link: Proxy,
    endpoint: Proxy,
    min_replicas: int,
) -> None:
    primary, replica = servers
    topics = Topics.from_settings(settings)
    events = population_events(200, seed=71, now=datetime.now(UTC))
    steady = "user-000000"
    first = as_records(topics, [e for e in events if e.user_id == steady])
    rest = as_records(topics, [e for e in events if e.user_id != steady])
    before, after = rest[::2], rest[1::2]
    produced = Counter(topic for topic, _, _ in [*first, *rest])
    figures: dict[str, object] = {"min_replicas": min_replicas, "events": len(events)}

    decider = WorkerProcess(
        settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
        tmp_path / "decisions.log",
    )
    events_only = settings.model_copy(update={"worker_role": "events"})
    async with running_worker(events_only, tmp_path / "worker.log") as worker:
        try:
            decider.start()
            assert worker.process is not None and decider.process is not None
            pids = (worker.process.pid, decider.process.pid)
            await produce(settings, first)
            await wait_applied(settings, steady, len(first))
            await produce(settings, before)
            await wait_committed(settings, topics.events)
            wait_in_sync(primary)
            approved, _ = await ask(settings, "q-before", steady)
            assert approved.outcome is Outcome.APPROVED, codes(approved)

            # The replica falls behind: the primary goes on acknowledging writes alone.
            link.disable()
            await produce(settings, after)
            if min_replicas:
                # Written to the primary, not acknowledged by a replica: not committed...
                await asyncio.sleep(6)
                figures["uncommitted_while_replica_behind"] = await committed_lag(
                    settings, topics.events
                )
                assert await committed_lag(settings, topics.events) > len(after) // 2
                # ...and a decision that cannot be remembered durably is not published.
                unsure, _ = await ask(settings, "q-behind", steady)
                assert codes(unsure) == ["SCORE_UNAVAILABLE"], codes(unsure)
            else:
                await wait_committed(settings, topics.events)  # committed all the same

            # The failover: the primary dies; until the endpoint moves, nothing answers.
            kill(primary)
            failed_at = time.monotonic()
            blind, seconds = await ask(settings, "q-failover", steady)
            assert blind.outcome is Outcome.REVIEW and codes(blind) == ["SCORE_UNAVAILABLE"]
            figures["decision_without_primary_s"] = round(seconds, 2)
            promote(replica)
            endpoint.repoint(f"127.0.0.1:{replica.port}")
            # A managed service replaces the lost replica.
            servers.append(
                redis_server(tmp_path / "new-replica", replica_of=f"127.0.0.1:{replica.port}")
            )
            wait_in_sync(replica)
            figures["endpoint_moved_s"] = round(time.monotonic() - failed_at, 1)

            if min_replicas:
                await assert_redis_matches_reference(settings, events, timeout=90)
                figures["recovered_s"] = round(time.monotonic() - failed_at, 1)
                await wait_committed(settings, topics.events)
                await assert_trajectories_match_reference(settings, events)
                figures["accounted"] = assert_every_record_accounted(worker, produced, Counter())
                retries = worker.log().count("failed (NotReplicated); retry")
                figures["not_replicated_retries"] = retries
                assert retries > 0
            else:
                # The events only the dead primary had are gone, and their offsets committed.
                await wait_committed(settings, topics.events)
                stored = sum(s.events_applied for s in (await redis_states(settings)).values())
                figures["events_lost"] = len(events) - stored
                assert stored < len(events)
                assert await committed_lag(settings, topics.events) == 0
                # Only replaying the topics gets them back.
                summary = run_replay(settings)
                figures["replay_applied"] = summary["applied"]
                await assert_redis_matches_reference(settings, events, timeout=30)
            assert (worker.process.pid, decider.process.pid) == pids
            assert worker.process.poll() is None and decider.process.poll() is None
            again, _ = await ask(settings, "q-after", steady)
            assert again.outcome is Outcome.APPROVED, codes(again)
            print("redis failover:", figures)
        finally:
            if decider.process is not None:
                decider.stop()  # before its topics are deleted
