"""The decision topic's tail on the real broker: it reads nothing while nobody waits, and a
waiter registered while it is paused still gets every decision published after it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from streams.adapters.kafka import decision_feed
from streams.adapters.kafka.decision_feed import DecisionTail
from streams.settings import Settings
from streams.topics import Topics
from tests.support import produce


@pytest.fixture
async def tail(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DecisionTail]:
    monkeypatch.setattr(decision_feed, "IDLE_PAUSE_SECONDS", 0.3)
    feed = DecisionTail(kafka_settings, Topics.from_settings(kafka_settings).loan_decisions)
    await feed.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(feed.run(stop.is_set))
    try:
        yield feed
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        await feed.stop()


def decision(request_id: str) -> bytes:
    return json.dumps({"request_id": request_id}).encode()


async def publish(settings: Settings, *answered: tuple[str, str]) -> None:
    topic = Topics.from_settings(settings).loan_decisions
    await produce(settings, [(topic, user.encode(), decision(rid)) for user, rid in answered])


async def paused(feed: DecisionTail) -> None:
    for _ in range(100):
        if not feed.following():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the tail kept reading with nobody waiting")


async def test_a_paused_tail_skips_what_nobody_waited_for_and_misses_nothing_after(
    kafka_settings: Settings, tail: DecisionTail
) -> None:
    assert tail.positioned() and not tail.following()  # started paused
    for round_ in range(4):
        await paused(tail)
        # Published while nobody waits: never handed to a later waiter of the same request.
        await publish(kafka_settings, ("u-1", f"q-{round_}"), ("u-2", f"q-other-{round_}"))
        waiting = await tail.expect("u-1", f"q-{round_}")
        assert tail.following()
        await asyncio.sleep(1.0)  # a tail still at its old position would have read it now
        assert not waiting.done()
        await publish(kafka_settings, ("u-1", f"q-{round_}"))
        assert json.loads(await asyncio.wait_for(waiting, 30)) == {"request_id": f"q-{round_}"}
        tail.forget("u-1", f"q-{round_}", waiting)


async def test_waiters_registered_together_while_paused_all_get_their_decisions(
    kafka_settings: Settings, tail: DecisionTail
) -> None:
    await paused(tail)
    ids = [(f"u-{i % 5}", f"q-{i}") for i in range(20)]
    futures = await asyncio.gather(*(tail.expect(user, rid) for user, rid in ids))
    assert tail.following()
    await publish(kafka_settings, *ids)
    values = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert [json.loads(v)["request_id"] for v in values] == [rid for _, rid in ids]
    for (user, rid), future in zip(ids, futures, strict=True):
        tail.forget(user, rid, future)
    await paused(tail)  # nobody waits any more: it stops reading again
