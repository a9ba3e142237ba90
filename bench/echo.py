"""The plain Kafka echo the decision latency is measured against, in a process of its own.

The decisions are answered by the worker's process; the echo was answered on the
benchmark's own event loop, which under overload also paces 16,000 events a second. Now the
echo is served by a process of its own, so both answers cross the same kind of boundary (the
requests of both are still sent, and their replies collected, by the benchmark's process).
Under overload the echo's p99 swung from 6.6 to 348 ms between runs of one afternoon, its
max near 500 ms (the reply consumers' fetch wait) in most; what that tail is, is not known
yet (docs/sizing.md).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.adapters.kafka.client import client_options, producer_options
from streams.settings import Settings

#: How long the echo may take to start and be assigned its topic (a spawned interpreter
#: imports aiokafka and joins a group).
READY_SECONDS = 60.0
#: How long the benchmark's consumers (the echo, the replies) let the broker hold an empty
#: fetch: aiokafka's default, as the worker's own consumers use. A fetch returns as soon as a
#: record arrives, so this bounds only idle polls; at 5 ms each idle consumer cost 14 % of a
#: core in the benchmark's process and 11 % in the broker's (against 1.0 and 1.7 % at 500),
#: on the two cores the worker is measured on.
REPLY_FETCH_WAIT_MS = 500


class EchoJob(NamedTuple):
    """What the echo's process is given: where from, where to, and its two signals."""

    settings: Settings
    source: str
    target: str
    ready: multiprocessing.synchronize.Event
    stop: multiprocessing.synchronize.Event


async def echo(job: EchoJob) -> None:
    """Send every record of ``job.source`` (from its end) to ``job.target`` as it is, until
    ``job.stop``; ``job.ready`` once the topic is assigned."""
    consumer = AIOKafkaConsumer(
        job.source,
        **client_options(job.settings),
        group_id=f"echo-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
        fetch_max_wait_ms=REPLY_FETCH_WAIT_MS,
    )
    producer = AIOKafkaProducer(**producer_options(job.settings), linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=50)
        # Where it reads from is fixed before the first request can be sent.
        for partition in consumer.assignment():
            await consumer.position(partition)
        job.ready.set()
        while not job.stop.is_set():
            for batch in (await consumer.getmany(timeout_ms=50)).values():
                for r in batch:
                    await producer.send(job.target, r.value, key=r.key)
    finally:
        await consumer.stop()
        await producer.stop()


def _serve(job: EchoJob) -> None:
    asyncio.run(echo(job))


@asynccontextmanager
async def echo_process(
    settings: Settings, source: str, target: str
) -> AsyncIterator[multiprocessing.process.BaseProcess]:
    """``async with echo_process(settings, source, target):`` an echo from ``source`` to
    ``target`` in a process of its own (the one yielded), ready when entered and stopped
    when left."""
    context = multiprocessing.get_context("spawn")
    job = EchoJob(settings, source, target, context.Event(), context.Event())
    process = context.Process(target=_serve, args=(job,), name="bench-echo", daemon=True)
    process.start()
    try:
        if not await asyncio.to_thread(job.ready.wait, READY_SECONDS):
            raise RuntimeError(f"the echo process was not ready in {READY_SECONDS:.0f} s")
        yield process
    finally:
        job.stop.set()
        await asyncio.to_thread(process.join, 10.0)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join)
