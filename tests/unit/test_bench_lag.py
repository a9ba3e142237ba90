"""A consumer group's lag on a preloaded backlog (pure arithmetic)."""

from __future__ import annotations

from aiokafka import TopicPartition

from bench.lag import behind

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_the_lag_is_what_lies_between_each_commit_and_its_partitions_end() -> None:
    ends = {A0: 100, A1: 50, B0: 0}
    assert behind(ends, {A0: 100, A1: 50, B0: 0}) == 0
    assert behind(ends, {A0: 60, A1: 50}) == 40
    # A partition never committed is behind by all of it; an empty one by nothing.
    assert behind(ends, {}) == 150
    # Commits on partitions not watched do not count, nor can a commit put it ahead.
    assert behind({A0: 10}, {A0: 12, B0: 99}) == 0
