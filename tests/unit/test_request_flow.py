"""The decider's request flow: a user's requests in order across batches, and the bound on
requests taken and not yet answered."""

from __future__ import annotations

import asyncio

import pytest

from streams.service.request_flow import EarlierRequestUnanswered, Unanswered, UserOrder, after


async def test_a_request_waits_for_the_same_users_request_before_it() -> None:
    order = UserOrder()
    done: list[str] = []

    async def answer(before: asyncio.Task[None] | None, request_id: str, seconds: float) -> None:
        await after(before, request_id)
        await asyncio.sleep(seconds)
        done.append(request_id)

    for request_id, seconds in (("q-1", 0.05), ("q-2", 0.0), ("q-3", 0.01)):
        # As the decider does: the one before is read when the next is made, not when it runs.
        before = order.latest("u-1")
        order.add("u-1", asyncio.ensure_future(answer(before, request_id, seconds)))
    last = order.latest("u-1")
    assert last is not None
    await last
    assert done == ["q-1", "q-2", "q-3"]
    await asyncio.sleep(0)
    assert len(order) == 0  # a user's entry goes with its latest request


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
async def test_a_request_after_one_not_answered_is_not_answered_either(ending: str) -> None:
    async def unanswered() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("the store went away")

    before = asyncio.ensure_future(unanswered() if ending == "failed" else asyncio.sleep(10))
    if ending == "cancelled":
        before.cancel()
    with pytest.raises(EarlierRequestUnanswered):
        await after(before, "q-2")
    await after(None, "q-3")  # nothing before: no wait


async def test_taking_waits_while_the_limit_is_unanswered_and_one_batch_may_pass_it() -> None:
    unanswered = Unanswered(limit=4)
    await unanswered.take(3)
    await unanswered.take(5)  # under the limit when taken: a batch is never split
    assert unanswered.count == 8
    waiting = asyncio.ensure_future(unanswered.take(1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await unanswered.answered(4)
    await asyncio.sleep(0.01)
    assert not waiting.done()  # 4 still unanswered of a limit of 4
    await unanswered.answered(1)
    await asyncio.wait_for(waiting, 1)
    assert unanswered.count == 4
