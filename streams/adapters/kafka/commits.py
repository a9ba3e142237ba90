"""Offsets committed in the order their batches were handled, each once it is settled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition

Commit = Callable[[dict[TopicPartition, int]], Awaitable[None]]


class OrderedCommits:
    """Commits handled batches in their order, each only once its records are settled.

    A batch is queued with what settles it (its records' own output acknowledged by Kafka),
    or nothing when handling it was enough. One task commits: it waits for every queued
    batch to settle, in order, then commits the highest offsets of them all at once (the
    batches queued meanwhile are merged into one commit), and goes on while batches are
    queued. A batch that does not settle stops it with nothing after it committed.
    ``in_flight`` bounds the batches queued or being committed: one more waits for them.
    With an ``interval``, a commit is followed by at most that long before the next (the
    batches of that time merged into it), unless someone drains: records that come one by
    one would otherwise cost a commit — a broker round trip and a write to its offsets log
    — each.
    """

    def __init__(self, commit: Commit, in_flight: int, interval: float = 0.0) -> None:
        self._commit = commit
        self.in_flight = in_flight
        self.interval = interval
        self._queued: list[tuple[dict[TopicPartition, int], Awaitable[Any] | None]] = []
        self._committing: asyncio.Future[None] | None = None
        self._taken = 0
        #: Set while someone waits for the commits: the interval is not waited out.
        self._hurry = asyncio.Event()

    def pending(self) -> int:
        """Batches queued or being committed."""
        return len(self._queued) + self._taken

    async def add(self, offsets: dict[TopicPartition, int], settled: Awaitable[Any] | None) -> None:
        """Queue a handled batch's offsets (first waiting for the queue, if full). Raises
        the error that stopped the commits, if one did: nothing after it may be handled."""
        await self.check()
        if self.pending() >= self.in_flight:
            await self.drain()
        self._queued.append((offsets, settled))
        if self._committing is None:
            self._committing = asyncio.ensure_future(self._run())

    async def check(self) -> None:
        """Raise the error that stopped the commits, if one did (else return at once)."""
        committing = self._committing
        if committing is not None and committing.done():
            await self.drain()

    async def drain(self) -> None:
        """Wait until everything queued is committed (raising the error that stopped it)."""
        self._hurry.set()
        try:
            while (committing := self._committing) is not None:
                try:
                    await committing
                finally:
                    if self._committing is committing:
                        self._committing = None
        finally:
            self._hurry.clear()

    def cancel(self) -> None:
        """Give up what is queued (never committed: redelivered, and recognised)."""
        for _, settled in self._queued:
            if isinstance(settled, asyncio.Future):
                settled.cancel()
        self._queued.clear()

    async def _run(self) -> None:
        while self._queued:
            taken, self._queued = self._queued, []
            self._taken = len(taken)
            try:
                merged: dict[TopicPartition, int] = {}
                for offsets, settled in taken:
                    if settled is not None:
                        await settled
                    for tp, offset in offsets.items():
                        merged[tp] = max(merged.get(tp, 0), offset)
                await self._commit(merged)
            finally:
                self._taken = 0
            if self.interval > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._hurry.wait()
        self._committing = None
