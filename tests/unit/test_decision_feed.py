"""The decision feed's dispatch: one tail hands each decision to the requests waiting for it."""

from __future__ import annotations

import asyncio

from streams.adapters.kafka.decision_feed import Waiters, decided_request
from tests.builders import encode


def decision(request_id: str, user_id: str = "u-1") -> bytes:
    return encode({"request_id": request_id, "user_id": user_id, "outcome": "approved"})


def test_the_request_id_is_read_from_a_decision_and_nothing_else() -> None:
    assert decided_request(decision("q-1")) == "q-1"
    deep = b"[" * 100_000
    for value in (None, b"", b"garbage", b"[1]", b'{"request_id": 7}', b"\xff", deep):
        assert decided_request(value) is None


async def test_a_decision_goes_to_every_waiter_of_its_request_and_no_other() -> None:
    waiters = Waiters()
    first, second = waiters.expect("u-1", "q-1"), waiters.expect("u-1", "q-1")
    other_request = waiters.expect("u-1", "q-2")
    other_user = waiters.expect("u-2", "q-1")
    assert len(waiters) == 4
    assert waiters.deliver(b"u-3", decision("q-1", "u-3")) == 0
    assert waiters.deliver(b"u-1", b"not json") == 0
    assert waiters.deliver(b"u-1", decision("q-1")) == 2
    assert first.result() == second.result() == decision("q-1")
    assert not other_request.done() and not other_user.done()
    # A second copy (a republished decision) finds nobody: the next POST waits anew.
    assert waiters.deliver(b"u-1", decision("q-1")) == 0
    assert len(waiters) == 2


async def test_forgetting_a_waiter_cancels_it_and_leaves_the_others() -> None:
    waiters = Waiters()
    gone, kept = waiters.expect("u-1", "q-1"), waiters.expect("u-1", "q-1")
    waiters.forget("u-1", "q-1", gone)
    waiters.forget("u-1", "q-1", gone)  # twice is harmless
    assert gone.cancelled()
    assert waiters.deliver(b"u-1", decision("q-1")) == 1
    assert kept.result() == decision("q-1")
    waiters.forget("u-1", "q-1", kept)  # after delivery: nothing left to forget
    assert len(waiters) == 0
    assert waiters.deliver(b"u-1", decision("q-1")) == 0


async def test_many_waiters_are_served_by_one_pass() -> None:
    waiters = Waiters()
    futures = {f"u-{i}": waiters.expect(f"u-{i}", f"q-{i}") for i in range(200)}
    for i in reversed(range(200)):
        waiters.deliver(f"u-{i}".encode(), decision(f"q-{i}", f"u-{i}"))
    results = await asyncio.gather(*futures.values())
    assert [decided_request(r) for r in results] == [f"q-{i}" for i in range(200)]
    assert len(waiters) == 0
