"""How many records a batch of a topic read in batches takes (:class:`BatchSizer`), and
whether a fetch round was read from a backlog (:func:`is_backlog`, :func:`left_behind`):
pure arithmetic over counts, offsets and durations, used by
:mod:`streams.adapters.kafka.events`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol


class _Offset(Protocol):
    @property
    def offset(self) -> int: ...


class _Watermarks(Protocol):
    def highwater(self, tp: object, /) -> int | None: ...


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


def left_behind(consumer: _Watermarks, fetched: Mapping[object, Sequence[_Offset]]) -> int:
    """How many records the logs of a round's partitions held past what the round returned
    (their high watermarks, as the fetches saw them)."""
    return left_past(
        consumer, {tp: messages[-1].offset + 1 for tp, messages in fetched.items() if messages}
    )


def left_past(consumer: _Watermarks, positions: Mapping[object, int]) -> int:
    """How many records the logs held past each partition's position (their high
    watermarks, as the last fetch of each saw them): a batch's backlog, counting the
    partitions it took nothing from."""
    behind = 0
    for tp, position in positions.items():
        high = consumer.highwater(tp)
        if high is not None:
            behind += max(0, high - position)
    return behind


class BatchSizer:
    """How many records the next batch may take.

    Under a backlog larger batches cost less per event: each Redis round trip and script call
    serves more events, and more of a user's events fold in one write (a shuffled backfill:
    batches of 5,000 → 50,000, about half the CPU per event). But a batch holds its records
    until it ends, so the bound is a duration (memory follows the pace), not a count: as many
    records as the last batch's pace folds in ``target_seconds``, between ``floor`` and
    ``ceiling``, at most :data:`GROWTH` times the last limit (the pace per event improves as
    batches grow, so the estimate errs low; the bound keeps one odd batch from setting it).

    A deep backlog (a backfill, or a fold far behind) takes longer batches: while more than a
    usual batch is left behind a batch, the next takes all of what is left, up to
    ``backfill_target_seconds`` of it at the pace. So a backfill's tail is one batch of what
    is left, not several usual ones (each visiting most users again for a few of their
    events). A fold only a few seconds behind keeps the usual target: beside live traffic a
    longer one lets the batches that catch up after a pause grow, and every event arriving
    during one waits for all of it (docs/sizing.md: freshness p99 2-5 times worse at 15 s),
    whereas a backlog deeper than a usual batch is already that late.
    """

    def __init__(
        self,
        ceiling: int,
        target_seconds: float,
        floor: int = FIRST_BATCH_RECORDS,
        backfill_target_seconds: float | None = None,
    ) -> None:
        self.ceiling = ceiling
        self.target_seconds = target_seconds
        self.floor = min(floor, ceiling)
        self.backfill_target_seconds = max(target_seconds, backfill_target_seconds or 0.0)
        self.limit = self.floor
        #: Whether the last batch observed left a deep backlog behind it.
        self.backfilling = False
        #: Called once for each batch observed that was sized by the backfill target.
        self.on_backfill_batch: Callable[[], object] = _nothing

    def observe(self, records: int, seconds: float, behind: int = 0) -> int:
        """Record a batch of ``records`` that took ``seconds`` to apply and left ``behind``
        records in its partitions' logs; the next limit."""
        if records > 0 and self.backfilling:
            self.on_backfill_batch()  # this batch took the limit the backfill target set
        if records > 0 and seconds > 0:
            pace = records / seconds  # a float: may be huge
            usual = min(self.ceiling, pace * self.target_seconds)
            longer = self.backfill_target_seconds > self.target_seconds
            self.backfilling = longer and behind > usual
            # Deep: what is left, at most a backfill batch (never past it into live traffic).
            paced = min(pace * self.backfill_target_seconds, behind) if self.backfilling else usual
            self.limit = max(self.floor, int(min(self.ceiling, GROWTH * self.limit, paced)))
        return self.limit


def _nothing() -> None:
    """No one is counting."""
