"""How many records a batch of a topic read in batches takes (:class:`BatchSizer`), and
whether a fetch round was read from a backlog (:func:`is_backlog`): pure arithmetic over
counts and durations, used by :mod:`streams.adapters.kafka.events`."""

from __future__ import annotations

#: The first batch's limit, and the least a backlog's batch may take.
FIRST_BATCH_RECORDS = 1000
#: How many times the last limit the next batch may take: the pace of a small batch is the
#: slowest per event (fewer events share each round trip and each user's visit), so the
#: target's estimate from it errs low, and a backlog reaches its batch size in three batches
#: rather than six doublings.
GROWTH = 8


def is_backlog(behind: int, returned: int) -> bool:
    """Whether a round was read from a backlog: the log held at least as much again past it.
    Records arriving live leave only those that came during the round behind; a batch that
    went on reading them would wait for arrivals, and every event in it would be as late."""
    return behind > 0 and behind >= returned


class BatchSizer:
    """How many records the next batch may take.

    Under a backlog larger batches cost less per event: each Redis round trip and script call
    serves more events, and more of a user's events fold in one write (a shuffled backfill:
    batches of 5,000 → 50,000, about half the CPU per event). But a batch holds its records
    until it ends, so the bound is a duration (memory follows the pace), not a count: as many
    records as the last batch's pace folds in ``target_seconds``, between ``floor`` and
    ``ceiling``, at most :data:`GROWTH` times the last limit (the pace per event improves as
    batches grow, so the estimate errs low; the bound keeps one odd batch from setting it).
    """

    def __init__(
        self, ceiling: int, target_seconds: float, floor: int = FIRST_BATCH_RECORDS
    ) -> None:
        self.ceiling = ceiling
        self.target_seconds = target_seconds
        self.floor = min(floor, ceiling)
        self.limit = self.floor

    def observe(self, records: int, seconds: float) -> int:
        """Record a batch of ``records`` that took ``seconds`` to apply; the next limit."""
        if records > 0 and seconds > 0:
            paced = records * self.target_seconds / seconds  # a float: may be huge
            self.limit = max(self.floor, int(min(self.ceiling, GROWTH * self.limit, paced)))
        return self.limit
