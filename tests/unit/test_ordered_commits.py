"""Handled batches are committed in order, each only once settled, and nothing after a batch
that does not settle (streams/adapters/kafka/commits.py)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from streams.adapters.kafka.commits import OrderedCommits

TP = TopicPartition("requests", 0)
OTHER = TopicPartition("requests", 1)


class Kafka:
    """Records every commit; a commit completes when the test lets it (or at once)."""

    def __init__(self, hold: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.hold = hold
        self.release = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        if self.hold:
            await self.release.wait()


def future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_is_committed_only_once_it_is_settled() -> None:
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10)
    published = future()
    await commits.add({TP: 5}, published)
    await settle()
    assert kafka.commits == []
    published.set_result(None)
    await commits.drain()
    assert kafka.commits == [{TP: 5}]


async def test_batches_settled_out_of_order_are_committed_in_order() -> None:
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10)
    first, second = future(), future()
    await commits.add({TP: 1}, first)
    await commits.add({TP: 2, OTHER: 7}, second)
    second.set_result(None)
    await settle()
    assert kafka.commits == []  # the second waits for the first
    first.set_result(None)
    await commits.drain()
    assert kafka.commits[-1] == {TP: 2, OTHER: 7}
    assert all(c[TP] <= 2 for c in kafka.commits)


async def test_batches_queued_while_one_commits_are_merged_into_one_commit() -> None:
    kafka = Kafka(hold=True)
    commits = OrderedCommits(kafka.commit, in_flight=10)
    await commits.add({TP: 1}, None)
    await settle()
    for offset in (2, 3, 4):
        await commits.add({TP: offset, OTHER: offset * 10}, None)
    kafka.release.set()
    await commits.drain()
    assert kafka.commits == [{TP: 1}, {TP: 4, OTHER: 40}]


async def test_nothing_after_a_batch_that_does_not_settle_is_committed() -> None:
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10)
    failed, later = future(), future()
    await commits.add({TP: 1}, None)
    await commits.drain()
    await commits.add({TP: 2}, failed)
    await commits.add({TP: 3}, later)
    later.set_result(None)
    failed.set_exception(ConnectionError("not acknowledged"))
    with pytest.raises(ConnectionError):
        await commits.drain()
    assert kafka.commits == [{TP: 1}]


async def test_the_next_batch_learns_of_an_earlier_failure() -> None:
    """Handling must stop at once, not after the queue fills up."""
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=100)
    failed = future()
    await commits.add({TP: 1}, failed)
    failed.set_exception(ConnectionError("not acknowledged"))
    await settle()
    with pytest.raises(ConnectionError):
        await commits.add({TP: 2}, None)
    assert kafka.commits == []


async def test_a_full_queue_makes_the_next_batch_wait() -> None:
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=2)
    first, second = future(), future()
    await commits.add({TP: 1}, first)
    await commits.add({TP: 2}, second)
    assert commits.pending() == 2
    third = asyncio.ensure_future(commits.add({TP: 3}, None))
    await settle()
    assert not third.done()
    first.set_result(None)
    second.set_result(None)
    await third
    await commits.drain()
    assert kafka.commits[-1] == {TP: 3}
    assert commits.pending() == 0


async def test_cancel_gives_up_what_is_queued() -> None:
    kafka = Kafka(hold=True)
    commits = OrderedCommits(kafka.commit, in_flight=10)
    await commits.add({TP: 1}, None)
    await settle()
    queued = future()
    await commits.add({TP: 2}, queued)
    commits.cancel()
    assert queued.cancelled()
    kafka.release.set()
    await commits.drain()
    assert kafka.commits == [{TP: 1}]


async def test_with_an_interval_the_batches_of_that_time_make_one_commit() -> None:
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10, interval=0.2)
    await commits.add({TP: 1}, None)
    await settle()
    assert kafka.commits == [{TP: 1}]  # the first at once
    await commits.add({TP: 2}, None)
    await commits.add({TP: 3}, None)
    await settle()
    assert kafka.commits == [{TP: 1}]  # the next ones wait for the interval...
    await asyncio.sleep(0.5)
    assert kafka.commits == [{TP: 1}, {TP: 3}]  # ...and are one commit after it


async def test_draining_does_not_wait_out_the_interval() -> None:
    """A rebalance or a stopping consumer commits what is handled at once."""
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10, interval=60)
    await commits.add({TP: 1}, None)
    await settle()
    await commits.add({TP: 2}, None)
    await asyncio.wait_for(commits.drain(), 5)
    assert kafka.commits == [{TP: 1}, {TP: 2}]
    await commits.add({TP: 3}, None)  # and the interval starts afresh
    await settle()
    assert kafka.commits == [{TP: 1}, {TP: 2}, {TP: 3}]


@pytest.mark.parametrize("steps", range(8))
async def test_a_commit_task_cancelled_as_its_interval_is_cut_short_stays_cancelled(
    steps: int,
) -> None:
    """Python 3.11's ``wait_for`` dropped a cancellation that came as the awaited wait ended
    (bpo-42130): the task went on, and could commit after the consumer had let go of its
    partitions. Each case lets the interrupted wait get ``steps`` loop turns further."""
    kafka = Kafka()
    commits = OrderedCommits(kafka.commit, in_flight=10, interval=60)
    await commits.add({TP: 1}, None)
    await settle()  # committed; the task now waits out the interval
    task = commits._committing
    assert isinstance(task, asyncio.Future)
    commits._hurry.set()  # as drain() does: the interval ends...
    for _ in range(steps):
        await asyncio.sleep(0)
    if task.cancel():  # ...and the consumer stops in the same moment
        with pytest.raises(asyncio.CancelledError):
            await task
    assert kafka.commits == [{TP: 1}]
