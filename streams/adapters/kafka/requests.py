"""Loan requests, read in batches with aiokafka (group :attr:`Settings.decisions_group`) and
committed once their answers are acknowledged by Kafka.

A request is handed to the decider as soon as a fetch returns it — no Faust stream, thread
or queue in between — and answered at once, beside the batches still being answered (a
request that waits on Redis never holds back the next one); the answers are published
without waiting for Kafka (a produce round trip per request would queue every request
behind the ones before it). Commits follow in order
(:class:`~streams.adapters.kafka.commits.OrderedCommits`), at most every
:data:`REQUEST_COMMIT_INTERVAL_SECONDS` and at once on a rebalance or a stop: a batch's
offsets are committed only once every answer and dead letter of it, and of every batch
before it, is acknowledged; a batch whose output was not (or that could not be answered)
stops the consumer with nothing after it committed, and is redelivered and answered the
same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.adapters.kafka.events import BatchConsumer
from streams.ports import InboundRecord
from streams.settings import Settings

#: Starts answering a batch of requests; returns what completes once they are answered and
#: Kafka acknowledged their output (it raises if not).
AnswerHandler = Callable[[Sequence[InboundRecord]], Awaitable[Awaitable[Any]]]
#: Batches of requests answered and not yet committed, at most (then the next batch waits
#: for their commit): with the interval below, bounds what a crash leaves to redeliver.
REQUEST_BATCHES_IN_FLIGHT = 1000
#: Requests come one by one: committing each batch at once cost a broker round trip per
#: request (4 % of the decider's main thread at 100 requests/s, and the broker's writes). A
#: crash redelivers at most this much of answered requests, answered the same again.
REQUEST_COMMIT_INTERVAL_SECONDS = 0.5
#: Most loan requests taken in one batch (with ``CREDITLINE_BATCH_MAX_RECORDS`` when lower):
#: the event fold's larger backlog batches are no reason to hold more requests at once.
MOST_REQUESTS_PER_BATCH = 50_000


class RequestConsumer(BatchConsumer):
    """Reads the loan-request topic and hands each batch of arrived requests to ``answer``."""

    label = "requests"
    commits_in_flight = REQUEST_BATCHES_IN_FLIGHT
    commit_interval_seconds = REQUEST_COMMIT_INTERVAL_SECONDS
    most_records = MOST_REQUESTS_PER_BATCH
    # A backlog of requests is answered in batches of the usual target: each answer waits
    # for its batch, and the first answers should not wait for 15 s of them.
    backfills = False

    def __init__(self, settings: Settings, topic: str, answer: AnswerHandler) -> None:
        super().__init__(settings, (topic,), settings.decisions_group)
        self.answer = answer

    async def _handle(self, records: list[InboundRecord]) -> Awaitable[Any]:
        settled = asyncio.ensure_future(await self.answer(records))
        # Its error stops the commits when they reach it; a batch they never reach (the
        # consumer stopping on an earlier one) must not be logged as an error nobody saw.
        settled.add_done_callback(_seen)
        return settled


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
