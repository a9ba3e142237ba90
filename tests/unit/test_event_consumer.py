"""What the events consumer commits, and how it joins its group (pure parts)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from streams.adapters.kafka.events import consumer_options, next_offsets
from streams.ports import InboundRecord
from streams.settings import Settings


def record(topic: str, partition: int, offset: int) -> InboundRecord:
    return InboundRecord(topic, partition, offset, b"u", b"{}")


def test_next_offsets_point_after_the_last_record_of_each_partition() -> None:
    records = [record("a", 0, 7), record("b", 0, 3), record("a", 0, 5), record("a", 1, 0)]
    assert next_offsets(records) == {
        TopicPartition("a", 0): 8,
        TopicPartition("b", 0): 4,
        TopicPartition("a", 1): 1,
    }
    assert next_offsets([]) == {}


def test_the_events_group_commits_by_hand_and_co_partitions_its_topics() -> None:
    settings = Settings.model_construct(app_id="app", batch_max_records=250)
    options = consumer_options(settings)
    assert options["group_id"] == "app" == settings.events_group
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "earliest"
    # Ranges per topic: partition p of every event topic goes to the same worker.
    assert options["partition_assignment_strategy"] == (RangePartitionAssignor,)
    assert options["max_poll_records"] == 250


def test_the_events_consumer_reads_ahead_little() -> None:
    """Its fetch buffers are what a lagging fold holds: far below one large record each."""
    settings = Settings.model_construct(app_id="app")
    options = consumer_options(settings)
    assert options["max_partition_fetch_bytes"] == 256 * 1024 < settings.max_message_bytes
    assert options["fetch_max_bytes"] == 8 * 1024 * 1024


def test_each_role_joins_its_groups_and_faust_never_joins_the_events_group() -> None:
    base = Settings.model_construct(app_id="app")
    groups = {
        role: base.model_copy(update={"worker_role": role}).consumer_groups
        for role in ("all", "events", "decisions")
    }
    assert groups == {
        "all": ("app", "app-decisions"),
        "events": ("app", "app-events"),
        "decisions": ("app-decisions",),
    }
    for role in ("all", "events", "decisions"):
        faust = base.model_copy(update={"worker_role": role}).faust_group
        assert faust != base.events_group  # its protocol would clash with the range assignor


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
