"""The decider's requests are acknowledged in order, each only once its answer is published,
while the next requests are answered meanwhile (streams/runtime/app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

from streams.ports import InboundRecord
from streams.runtime.app import _Worker


class Requests:
    """Faust's stream as the worker uses it: batches of events, and ``ack``."""

    def __init__(self, count: int) -> None:
        self.events = [
            SimpleNamespace(
                message=SimpleNamespace(
                    topic="requests",
                    partition=0,
                    offset=i,
                    key=b"u",
                    value=b"{}",
                    timestamp=0.0,
                    headers=[],
                )
            )
            for i in range(count)
        ]
        self.acked: list[int] = []

    async def batches(self) -> AsyncIterator[list[Any]]:
        for event in self.events:
            yield [event]

    async def ack(self, event: Any) -> None:
        self.acked.append(event.message.offset)


class Decider:
    """Answers at once; each answer's publishing completes when the test says so."""

    def __init__(self) -> None:
        self.published: list[asyncio.Future[None]] = []

    async def submit(self, records: Sequence[InboundRecord]) -> tuple[list[Any], Any]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.published.append(done)
        return [], done


def worker() -> tuple[_Worker, list[BaseException]]:
    crashes: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    app = SimpleNamespace(should_stop=False, crash=crash)
    parts = SimpleNamespace(settings=SimpleNamespace())
    return _Worker(app, parts, None), crashes  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_requests_are_answered_ahead_and_acknowledged_in_order() -> None:
    runtime, crashes = worker()
    stream, decider = Requests(3), Decider()
    answering = asyncio.create_task(
        runtime._answer_all(stream, stream.batches(), decider)  # type: ignore[arg-type]
    )
    await settle()
    assert len(decider.published) == 3  # all answered before any was published
    decider.published[1].set_result(None)
    await settle()
    assert stream.acked == []  # the second is out, the first is not: nothing acknowledged
    decider.published[0].set_result(None)
    await settle()
    assert stream.acked == [0, 1]
    decider.published[2].set_result(None)
    await asyncio.wait_for(answering, 5)
    assert stream.acked == [0, 1, 2]
    assert crashes == []


async def test_an_answer_not_published_stops_the_worker_with_nothing_after_it_acknowledged() -> (
    None
):
    runtime, crashes = worker()
    stream, decider = Requests(3), Decider()
    answering = asyncio.create_task(
        runtime._answer_all(stream, stream.batches(), decider)  # type: ignore[arg-type]
    )
    await settle()
    decider.published[0].set_result(None)
    decider.published[1].set_exception(RuntimeError("the broker refused it"))
    decider.published[2].set_result(None)
    await asyncio.wait_for(answering, 15)
    assert stream.acked == [0]
    assert [type(exc) for exc in crashes] == [RuntimeError]
