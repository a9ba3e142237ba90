"""Reviewing users whose status changes with time alone (a freeze running out, a dwell time
ending, a month or a policy starting), on time, from the per-partition review schedule."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from streams.service.fold import EventFolder
from streams.service.shell import utc_now

log = logging.getLogger(__name__)


class ReviewSweeper:
    """Reviews users whose status may change with time alone, on time.

    Each user's next review instant is kept in a sorted set per event partition (written
    with every state); the worker owning a partition sweeps it every few seconds: due users
    are reviewed through the same :meth:`EventFolder.review` path as events (versioned
    writes, the outbox), so several workers, crashes and repeats change nothing but the
    timing. A policy taking effect brings every user of the partition's review forward to it.
    A rebalance waiting for the consumer's partitions ends a sweep between rounds of
    ``batch_users`` (the folder's ``interrupted``), as it ends a backlog's batch.
    """

    def __init__(
        self,
        folder: EventFolder,
        *,
        batch_users: int = 500,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.folder = folder
        self.store = folder.store
        self.metrics = folder.metrics
        self.batch_users = batch_users
        self.clock = clock

    async def sweep(self, partitions: set[int]) -> int:
        """Review every due user of ``partitions``; returns how many were reviewed."""
        started = time.perf_counter()
        try:
            return await self._sweep(partitions)
        finally:
            self.metrics.review_sweep_seconds.observe(time.perf_counter() - started)

    async def _sweep(self, partitions: set[int]) -> int:
        now = self.clock()
        in_force = [t for t in self.folder.timelines().effective_instants() if t <= now]
        reviewed = 0
        overdue = 0
        for partition in sorted(partitions):
            if self.folder.interrupted():
                return self._ended_early(reviewed)
            if in_force:
                await self.folder.retry.until_stopped(
                    "schedule_policy", partial(self.store.schedule_policy, partition, in_force[-1])
                )
            while True:
                due = await self.folder.retry.until_stopped(
                    "due_reviews",
                    partial(self.store.due_reviews, partition, now, self.batch_users),
                )
                if not due:
                    break
                for _, at in due:
                    self.metrics.review_lag.observe(max(0.0, now.timestamp() - at))
                await self.folder.review({user: {partition} for user, _ in due})
                reviewed += len(due)
                if len(due) < self.batch_users:
                    break
                if self.folder.interrupted():
                    return self._ended_early(reviewed)
            # Through the same retry as every other Redis call: one reset connection must not
            # stop the worker.
            overdue += len(
                await self.folder.retry.until_stopped(
                    "due_reviews",
                    partial(self.store.due_reviews, partition, now - timedelta(seconds=60), 1000),
                )
            )
        self.metrics.reviews_due.set(overdue)
        return reviewed

    @staticmethod
    def _ended_early(reviewed: int) -> int:
        """End a sweep a rebalance waits for (the sweep holds the consumer's batch lock): the
        users still due stay in the schedule, swept by whoever owns their partition next."""
        log.info("review sweep ended after %d users: a rebalance waits", reviewed)
        return reviewed
