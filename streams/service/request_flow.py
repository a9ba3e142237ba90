"""How loan requests flow through the decider: each user's in record order across batches,
answered beside one another otherwise, and a bound on those taken and not yet answered.

The request consumer hands a batch over and reads the next while the first is still being
answered: a request that waits on Redis (or on a long path back) then holds back only the
same user's later requests, never the users behind it in the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from schemas.models import LoanDecision
from streams.service.shadowing import ShadowAsk


class EarlierRequestUnanswered(Exception):
    """The same user's request before this one was not answered: this one is not either
    (answering it first would publish the user's decisions out of order)."""


class UserOrder:
    """Each user's latest request being answered: the next one of that user waits for it."""

    def __init__(self) -> None:
        self._latest: dict[str, asyncio.Task[None]] = {}

    def latest(self, user: str) -> asyncio.Task[None] | None:
        """The user's request being answered last, if any."""
        return self._latest.get(user)

    def add(self, user: str, answering: asyncio.Task[None]) -> None:
        """``answering`` is now the user's latest (it waits for the one before, itself)."""
        self._latest[user] = answering
        answering.add_done_callback(lambda done: self._done(user, done))

    def _done(self, user: str, done: asyncio.Task[None]) -> None:
        if self._latest.get(user) is done:
            del self._latest[user]

    def __len__(self) -> int:
        return len(self._latest)


async def after(before: asyncio.Task[None] | None, request_id: str) -> None:
    """Wait for the same user's request ``before`` (None: none); raise
    :class:`EarlierRequestUnanswered` if it was not answered. Its error is its own batch's
    to report (this batch is never committed past it): waiting does not raise it again."""
    if before is None:
        return
    await asyncio.wait((before,))
    if before.cancelled() or before.exception() is not None:
        raise EarlierRequestUnanswered(request_id)


class Unanswered:
    """Requests taken and not yet answered, at most ``limit`` before :meth:`take` waits (one
    batch may go past it: a batch is never split)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._room = asyncio.Condition()

    async def take(self, count: int) -> None:
        """Count ``count`` requests taken, first waiting while ``limit`` are unanswered."""
        async with self._room:
            await self._room.wait_for(lambda: self.count < self.limit)
            self.count += count

    async def answered(self, count: int) -> None:
        """``count`` of the requests taken are answered (or given up)."""
        async with self._room:
            self.count -= count
            self._room.notify_all()


class BatchAnswers:
    """What the requests of one batch came to: each one's decision (by its place in the
    batch) and what a candidate in shadow answers from, and every record sent for them."""

    def __init__(self, size: int) -> None:
        self.answered: list[tuple[LoanDecision, ShadowAsk | None] | None] = [None] * size
        self.deliveries: list[Awaitable[Any]] = []

    def decisions(self) -> list[LoanDecision]:
        """The decisions published, in record order."""
        return [answered[0] for answered in self.answered if answered is not None]

    def shadows(self) -> list[tuple[LoanDecision, ShadowAsk]]:
        """The live decisions a candidate answers beside, in record order."""
        return [(decision, ask) for decision, ask in filter(None, self.answered) if ask is not None]
