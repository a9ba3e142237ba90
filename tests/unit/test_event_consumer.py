"""What the events consumer commits, and how it joins its group (pure parts)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from hypothesis import given
from hypothesis import strategies as st

from streams.adapters.kafka.batch_sizing import (
    FIRST_BATCH_RECORDS,
    GROWTH,
    BatchSizer,
    is_backlog,
    left_behind,
)
from streams.adapters.kafka.events import (
    CATCH_UP_WAIT_MS,
    EventConsumer,
    consumer_options,
    held_fetch_ms,
    next_offsets,
)
from streams.adapters.kafka.requests import MOST_REQUESTS_PER_BATCH, RequestConsumer
from streams.ports import InboundRecord
from streams.settings import Settings


def record(topic: str, partition: int, offset: int) -> InboundRecord:
    return InboundRecord(topic, partition, offset, b"u", b"{}")


def test_next_offsets_point_after_the_last_record_of_each_partition() -> None:
    fetched = {
        TopicPartition("a", 0): [record("a", 0, 5), record("a", 0, 7), record("a", 0, 6)],
        TopicPartition("b", 0): [record("b", 0, 3)],
        TopicPartition("a", 1): [record("a", 1, 0)],
        TopicPartition("b", 1): [],
    }
    assert next_offsets(fetched) == {
        TopicPartition("a", 0): 8,
        TopicPartition("b", 0): 4,
        TopicPartition("a", 1): 1,
    }
    assert next_offsets({}) == {}


def test_the_events_group_commits_by_hand_and_co_partitions_its_topics() -> None:
    settings = Settings.model_construct(app_id="app", batch_max_records=250)
    options = consumer_options(settings)
    assert options["group_id"] == "app" == settings.events_group
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "earliest"
    # Ranges per topic: partition p of every event topic goes to the same worker.
    assert options["partition_assignment_strategy"] == (RangePartitionAssignor,)
    assert options["max_poll_records"] == 250


def test_loan_request_batches_stay_bounded_where_event_batches_grow() -> None:
    """A backlog's event batches may take up to CREDITLINE_BATCH_MAX_RECORDS, and a deep
    one's the backfill target; a request batch no more than MOST_REQUESTS_PER_BATCH, or
    CREDITLINE_BATCH_MAX_RECORDS when lower, of the usual target however deep."""
    large = Settings.model_construct(app_id="app", batch_max_records=300_000)
    events = EventConsumer(large, ["t"], _fold).sizer
    assert events.ceiling == 300_000
    assert events.backfill_target_seconds == large.batch_backfill_target_seconds
    requests = RequestConsumer(large, "t", _answer).sizer
    assert requests.ceiling == MOST_REQUESTS_PER_BATCH
    assert requests.backfill_target_seconds == large.batch_target_seconds
    assert requests.observe(1000, 0.1, behind=10**9) == GROWTH * 1000
    assert not requests.backfilling
    small = Settings.model_construct(app_id="app", batch_max_records=250)
    assert RequestConsumer(small, "t", _answer).sizer.ceiling == 250
    events = EventConsumer(small, ["t"], _fold).sizer
    assert events.observe(250, 0.001, behind=10**9) == 250  # however deep
    # A backfill target below the usual one: the usual one holds throughout.
    low = Settings.model_construct(app_id="app", batch_backfill_target_seconds=0.1)
    events = EventConsumer(low, ["t"], _fold).sizer
    assert events.backfill_target_seconds == low.batch_target_seconds


async def _fold(records: list[InboundRecord]) -> None:
    return None


async def _answer(records: Sequence[InboundRecord]) -> Awaitable[None]:
    return asyncio.sleep(0)


def test_the_events_consumer_reads_ahead_little() -> None:
    """Its fetch buffers are what a lagging fold holds: far below one large record each."""
    settings = Settings.model_construct(app_id="app")
    options = consumer_options(settings)
    assert options["max_partition_fetch_bytes"] == 256 * 1024 < settings.max_message_bytes
    assert options["fetch_max_bytes"] == 8 * 1024 * 1024


def test_only_the_events_consumer_lets_the_broker_gather_its_fetches() -> None:
    """The fold may wait a few ms for fuller fetches; a loan request must not."""
    settings = Settings.model_construct(
        app_id="app", events_fetch_min_bytes=32768, events_fetch_wait_seconds=0.01
    )
    events = consumer_options(settings)
    assert (events["fetch_min_bytes"], events["fetch_max_wait_ms"]) == (32768, 10)
    requests = consumer_options(settings, settings.decisions_group, "requests")
    # aiokafka's own default: the broker answers as soon as one byte is there.
    assert requests.get("fetch_min_bytes", 1) == 1


async def _no_handler(records: Sequence[InboundRecord]) -> Any:
    raise AssertionError("never called: nothing is consumed here")


def test_the_catch_up_round_outwaits_a_fetch_the_broker_may_hold() -> None:
    """Else the round ends just before the held fetch answers, and its events wait a batch."""
    held = Settings.model_construct(
        app_id="app", events_fetch_min_bytes=32768, events_fetch_wait_seconds=0.01
    )
    assert held_fetch_ms(held) == 10
    assert EventConsumer(held, ["t"], _no_handler).catch_up_wait_ms == CATCH_UP_WAIT_MS + 10
    assert RequestConsumer(held, "r", _no_handler).catch_up_wait_ms == CATCH_UP_WAIT_MS
    default = Settings.model_construct(app_id="app")
    assert held_fetch_ms(default) == 0
    assert consumer_options(default)["fetch_min_bytes"] == 1
    assert EventConsumer(default, ["t"], _no_handler).catch_up_wait_ms == CATCH_UP_WAIT_MS


def test_each_role_joins_the_groups_of_its_work_and_no_other() -> None:
    base = Settings.model_construct(app_id="app")
    groups = {
        role: base.model_copy(update={"worker_role": role}).consumer_groups
        for role in ("all", "events", "decisions")
    }
    assert groups == {
        "all": ("app", "app-decisions"),
        "events": ("app",),
        "decisions": ("app-decisions",),
    }


def test_a_folding_process_collects_garbage_less_often() -> None:
    import gc

    from streams.runtime.tuning import tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold()[0] >= 10_000
        assert gc.get_freeze_count() > 0  # start-up objects are never re-scanned
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_batch_is_handled_with_the_garbage_collector_paused_and_resumed_after() -> None:
    import gc

    from streams.runtime.tuning import collection_deferred

    seen: list[bool] = []

    async def handle(batch: list[int]) -> int:
        seen.append(gc.isenabled())
        await asyncio.sleep(0)  # other tasks run meanwhile: still paused
        seen.append(gc.isenabled())
        if not batch:
            raise ValueError("empty")
        return len(batch)

    async def fails() -> None:
        with pytest.raises(ValueError, match="empty"):
            await collection_deferred(handle)([])

    assert gc.isenabled()
    assert asyncio.run(collection_deferred(handle)([1, 2])) == 2
    assert gc.isenabled()
    asyncio.run(fails())
    assert gc.isenabled()  # resumed after a failed batch too
    assert seen == [False] * 4
    gc.disable()  # paused by someone else: left paused
    try:
        asyncio.run(collection_deferred(handle)([1]))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_workers_event_consumer_folds_with_the_garbage_collector_paused() -> None:
    import gc

    from streams.metrics import Metrics
    from streams.runtime.bootstrap import Components

    @dataclass
    class Folder:
        enabled: list[bool]

        async def process(self, records: list[InboundRecord]) -> None:
            self.enabled.append(gc.isenabled())

    folder = Folder([])
    consumer = Components(Settings(), Metrics(), sink=None).event_consumer(folder)  # type: ignore[arg-type]

    async def handle_one() -> None:
        await consumer.handler([])

    asyncio.run(handle_one())
    assert folder.enabled == [False]
    assert gc.isenabled()


def test_the_workers_event_consumer_shows_its_batch_limit_backfill_mode_and_batches() -> None:
    from streams.metrics import Metrics
    from streams.runtime.bootstrap import Components

    class Folder:
        async def process(self, records: list[InboundRecord]) -> None:
            return None

    metrics = Metrics()
    consumer = Components(Settings(), metrics, sink=None).event_consumer(Folder())  # type: ignore[arg-type]
    sample = metrics.registry.get_sample_value
    assert sample("creditline_batch_limit_records") == FIRST_BATCH_RECORDS
    assert sample("creditline_batch_backfilling") == 0
    consumer.sizer.observe(1000, 0.1, behind=10**6)  # a deep backlog
    assert sample("creditline_batch_limit_records") == GROWTH * FIRST_BATCH_RECORDS
    assert sample("creditline_batch_backfilling") == 1
    assert sample("creditline_backfill_batches_total") == 0  # that batch was sized before
    consumer.sizer.observe(8000, 0.8, behind=0)
    assert sample("creditline_batch_backfilling") == 0
    assert sample("creditline_backfill_batches_total") == 1  # this one by the backfill target
    consumer.sizer.observe(8000, 0.8, behind=0)
    assert sample("creditline_backfill_batches_total") == 1


def test_batches_start_small_and_grow_at_most_eightfold_towards_the_target_duration() -> None:
    sizer = BatchSizer(ceiling=50_000, target_seconds=5.0)
    assert sizer.limit == FIRST_BATCH_RECORDS
    # 10,000 records a second: the target allows 50,000, reached in two batches.
    limits = [sizer.observe(sizer.limit, sizer.limit / 10_000) for _ in range(3)]
    assert limits == [GROWTH * FIRST_BATCH_RECORDS, 50_000, 50_000]
    # A pace that improves with the batch's size: the limit follows it to the ceiling.
    sizer = BatchSizer(ceiling=200_000, target_seconds=5.0)
    limits = [sizer.observe(n, n * (100e-6 if n < 20_000 else 50e-6)) for n in (1000, 8000)]
    assert limits == [8000, 50_000]
    assert sizer.observe(50_000, 50_000 * 50e-6) == 100_000


def test_a_slower_pace_shrinks_the_next_batch_but_never_below_the_floor() -> None:
    sizer = BatchSizer(ceiling=50_000, target_seconds=5.0)
    sizer.limit = 40_000
    assert sizer.observe(40_000, 20.0) == 10_000  # 2,000 a second: 5 s is 10,000
    assert sizer.observe(10, 1.0) == FIRST_BATCH_RECORDS  # a slow trickle: the floor
    assert sizer.observe(0, 0.0) == FIRST_BATCH_RECORDS  # nothing applied: unchanged


def test_a_deep_backlog_takes_backfill_batches_and_a_shallow_one_the_usual() -> None:
    """While more than a usual batch is left behind, the next batch takes what is left, up
    to a backfill batch at the pace; otherwise the usual target."""
    sizer = BatchSizer(ceiling=200_000, target_seconds=5.0, backfill_target_seconds=15.0)
    # 10,000 a second: a usual batch is 50,000 records, a backfill batch 150,000.
    assert sizer.observe(1000, 0.1, behind=499_000) == GROWTH * 1000
    assert sizer.backfilling
    assert sizer.observe(8000, 0.8, behind=491_000) == 64_000
    assert sizer.observe(64_000, 6.4, behind=427_000) == 150_000
    assert sizer.observe(150_000, 15.0, behind=150_000) == 150_000
    # Less left than a backfill batch but more than a usual one: the tail in one batch.
    assert sizer.observe(150_000, 15.0, behind=120_000) == 120_000
    assert sizer.backfilling
    # No more than a usual batch left: the usual target at once.
    assert sizer.observe(120_000, 12.0, behind=50_000) == 50_000
    assert not sizer.backfilling
    # Live traffic after a pause: a few seconds behind is not deep.
    assert sizer.observe(35_000, 3.5, behind=2_000) == 50_000
    assert not sizer.backfilling
    # The ceiling bounds a fast pace's backfill batch.
    assert sizer.observe(100_000, 1.0, behind=10**7) == 200_000
    # A usual batch the ceiling bounds is not deep behind less than the ceiling.
    assert sizer.observe(200_000, 1.0, behind=150_000) == 200_000
    assert not sizer.backfilling


def test_a_ceiling_below_the_floor_bounds_every_batch() -> None:
    sizer = BatchSizer(ceiling=40, target_seconds=5.0)
    assert sizer.limit == 40
    assert sizer.observe(40, 0.001) == 40
    assert sizer.observe(1, 10.0) == 40


@given(
    ceiling=st.integers(1, 100_000),
    target=st.floats(0.01, 60),
    backfill_target=st.none() | st.floats(0.01, 60),
    batches=st.lists(
        st.tuples(st.integers(0, 100_000), st.floats(0, 120), st.integers(0, 10**7)),
        max_size=20,
    ),
)
def test_the_limit_always_stays_between_floor_and_ceiling(
    ceiling: int,
    target: float,
    backfill_target: float | None,
    batches: list[tuple[int, float, int]],
) -> None:
    sizer = BatchSizer(
        ceiling=ceiling,
        target_seconds=target,
        backfill_target_seconds=backfill_target,
    )
    for records, seconds, behind in batches:
        before = sizer.limit
        limit = sizer.observe(records, seconds, behind)
        assert min(FIRST_BATCH_RECORDS, ceiling) <= limit <= ceiling
        assert limit <= max(GROWTH * before, sizer.floor)
        if backfill_target is None or backfill_target <= target:
            assert not sizer.backfilling
        elif sizer.backfilling and records and seconds:  # what is left, or the floor
            assert limit <= max(behind, sizer.floor)


@dataclass
class _Message:
    offset: int


class _Watermarks:
    def __init__(self, highs: dict[TopicPartition, int]) -> None:
        self.highs = highs

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highs.get(tp)


def test_left_behind_counts_what_each_round_partition_held_past_its_last_record() -> None:
    a, b, c = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)
    consumer = _Watermarks({a: 110, b: 5})  # c's high watermark is not known yet
    fetched = {a: [_Message(8), _Message(9)], b: [_Message(4)], c: [_Message(0)]}
    assert left_behind(consumer, fetched) == 100


def test_records_arriving_live_are_not_a_backlog() -> None:
    assert is_backlog(behind=5_000, returned=500)  # far more waiting than a round returns
    assert is_backlog(behind=500, returned=500)
    assert not is_backlog(behind=12, returned=400)  # what came during the round
    assert not is_backlog(behind=0, returned=0)
