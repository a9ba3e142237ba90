"""The HTTP decision API's service against fakes of Kafka and Redis, with the real loan
decider answering what it publishes: answers come from the decision topic, once per request
id, within a bounded wait, and at most a bounded number wait at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from schemas.http import Problem
from schemas.models import LoanDecision
from streams.core.answer import request_digest
from streams.core.policy import load_default_policy
from streams.core.timeline import constant
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.service.decide import LoanDecider
from streams.service.http_decisions import DecisionDesk
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, loan_request, request_doc
from tests.unit.fakes import FakeFeed, FakeSink, FakeStore

SETTINGS = Settings.model_construct(**Settings().model_dump())
TOPICS = Topics.from_settings(SETTINGS)
JSON = "application/json"
TIMELINES = constant(load_default_policy())


def body(**overrides: Any) -> bytes:
    return encode(request_doc(requested_at=datetime.now(UTC).isoformat(), **overrides))


class Kafka(FakeSink):
    """The request and decision topics: a request sent is answered by the real decider
    (``answering``), and every decision it publishes reaches the feed."""

    def __init__(self, feed: FakeFeed, store: FakeStore, metrics: Metrics) -> None:
        super().__init__()
        self.feed = feed
        self.answering = True
        self.failing: Exception | None = None
        self.acknowledging = True
        self.offset = 0
        self.decider = LoanDecider(SETTINGS, store, self, metrics, lambda: TIMELINES)
        self.tasks: list[asyncio.Task[Any]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = ()
    ) -> Awaitable[Any]:
        if self.failing is not None:
            raise self.failing
        delivery = await super().send(topic, key, value, headers)
        if topic == TOPICS.loan_decisions:
            assert key is not None and value is not None
            decision = LoanDecision.model_validate_json(value)
            self.feed.publish(key.decode(), decision.request_id, value)
        elif topic == TOPICS.loan_requests and self.answering:
            self.offset += 1
            record = InboundRecord(topic, 0, self.offset, key, value)
            self.tasks.append(asyncio.create_task(self.decider.process([record])))
        if not self.acknowledging:
            return asyncio.get_running_loop().create_future()  # never acknowledged
        return delivery


def desk(wait: float = 5.0, in_flight: int = 10) -> tuple[DecisionDesk, Kafka, FakeStore, FakeFeed]:
    settings = SETTINGS.model_copy(
        update={"http_decision_wait_seconds": wait, "http_max_in_flight": in_flight}
    )
    store, feed, metrics = FakeStore(), FakeFeed(), Metrics()
    kafka = Kafka(feed, store, metrics)
    return DecisionDesk(settings, store, kafka, feed, metrics), kafka, store, feed


def counted(d: DecisionDesk, outcome: str) -> float:
    return (
        d.metrics.registry.get_sample_value(
            "creditline_http_decision_requests_total", {"outcome": outcome}
        )
        or 0.0
    )


def problem(reply_body: bytes) -> Problem:
    return Problem.model_validate_json(reply_body)


async def test_a_request_is_published_as_posted_and_answered_with_the_decision_bytes() -> None:
    d, kafka, _, _ = desk()
    posted = body(request_id="q-1", user_id="u-1", extra="kept")
    reply = await d.submit(posted, JSON)
    assert reply.status == 200
    [request] = kafka.to(TOPICS.loan_requests)
    assert (request.key, request.value) == (b"u-1", posted)
    [decision] = kafka.to(TOPICS.loan_decisions)
    assert reply.body == decision.value
    assert counted(d, "answered") == 1
    assert d.metrics.registry.get_sample_value("creditline_http_decision_wait_seconds_count") == 1


async def test_the_same_request_twice_gets_the_same_bytes_and_is_decided_once() -> None:
    d, kafka, _, _ = desk()
    posted = body(request_id="q-1")
    first, second = await d.submit(posted, JSON), await d.submit(posted, JSON)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert len(kafka.to(TOPICS.loan_decisions)) == 2  # the second one republished
    decided = d.metrics.registry.get_sample_value(
        "creditline_decisions_total", {"outcome": "review"}
    )
    assert decided == 1


async def test_concurrent_requests_each_get_their_own_decision() -> None:
    d, _, _, _ = desk(in_flight=200)
    replies = await asyncio.gather(
        *(d.submit(body(request_id=f"q-{i}", user_id=f"u-{i}"), JSON) for i in range(200))
    )
    decisions = [LoanDecision.model_validate_json(r.body) for r in replies]
    assert [(x.request_id, x.user_id) for x in decisions] == [
        (f"q-{i}", f"u-{i}") for i in range(200)
    ]


async def test_a_wait_that_runs_out_is_504_then_the_decision_can_be_looked_up() -> None:
    d, kafka, store, _ = desk(wait=0.05)
    kafka.answering = False
    reply = await d.submit(body(request_id="q-1", user_id="u-1"), JSON)
    assert reply.status == 504
    document = problem(reply.body)
    assert (document.request_id, document.poll) == ("q-1", "/v1/decisions/q-1?user_id=u-1")
    assert counted(d, "timeout") == 1
    assert (await d.lookup("q-1", "u-1")).status == 202  # published here, not decided yet
    assert (await d.lookup("q-9", "u-1")).status == 404
    store.decisions[("u-1", "q-1")] = ("digest", b'{"request_id": "q-1"}')
    found = await d.lookup("q-1", "u-1")
    assert (found.status, found.body) == (200, b'{"request_id": "q-1"}')
    assert (await d.lookup("q 1", None)).status == 422


async def test_a_request_id_answering_another_request_is_409_and_not_published() -> None:
    d, kafka, store, _ = desk()
    store.decisions[("u-1", "q-1")] = ("another digest", b"{}")
    reply = await d.submit(body(request_id="q-1", user_id="u-1"), JSON)
    assert reply.status == 409
    assert kafka.to(TOPICS.loan_requests) == []
    assert counted(d, "invalid") == 1


async def test_the_same_content_is_no_conflict() -> None:
    d, _, store, _ = desk()
    posted = body(request_id="q-1", user_id="u-1")
    first = await d.submit(posted, JSON)
    digest = request_digest(loan_request(**json.loads(posted)))
    assert store.decisions[("u-1", "q-1")][0] == digest
    assert (await d.submit(posted, JSON)).body == first.body


async def test_beyond_the_in_flight_bound_requests_are_429_until_one_ends() -> None:
    d, kafka, _, _ = desk(wait=0.3, in_flight=1)
    kafka.answering = False
    waiting = asyncio.create_task(d.submit(body(request_id="q-1"), JSON))
    for _ in range(10_000):  # until q-1 is published and waits for its decision
        if kafka.to(TOPICS.loan_requests):
            break
        await asyncio.sleep(0.001)
    busy = await d.submit(body(request_id="q-2"), JSON)
    assert busy.status == 429
    assert dict(busy.headers)["Retry-After"] == "1"
    assert (await waiting).status == 504
    assert len(kafka.to(TOPICS.loan_requests)) == 1
    kafka.answering = True
    assert (await d.submit(body(request_id="q-3"), JSON)).status == 200
    assert (counted(d, "busy"), counted(d, "timeout"), counted(d, "answered")) == (1, 1, 1)


async def test_nothing_is_published_while_the_worker_is_not_ready() -> None:
    d, kafka, _, feed = desk()
    feed.ready = False
    assert (await d.submit(body(), JSON)).status == 503
    feed.ready, d.ready = True, lambda: False
    assert (await d.submit(body(), JSON)).status == 503
    assert kafka.sent == []
    assert counted(d, "unavailable") == 2


async def test_kafka_refusing_or_not_acknowledging_is_503() -> None:
    d, kafka, _, _ = desk(wait=0.1)
    kafka.failing = OSError("down")
    refused = await d.submit(body(request_id="q-1"), JSON)
    assert refused.status == 503
    assert "not published" in problem(refused.body).detail
    kafka.failing, kafka.acknowledging = None, False
    unacknowledged = await d.submit(body(request_id="q-2"), JSON)
    assert unacknowledged.status == 503
    assert "may or may not" in problem(unacknowledged.body).detail


async def test_a_tail_that_cannot_be_moved_to_the_end_is_503_and_nothing_is_published() -> None:
    d, kafka, _, feed = desk()
    feed.refuse = OSError("broker away")
    refused = await d.submit(body(request_id="q-1"), JSON)
    assert refused.status == 503
    assert "nothing was published" in problem(refused.body).detail
    assert kafka.sent == [] and feed.waiting == {}
    feed.refuse = None
    assert (await d.submit(body(request_id="q-1"), JSON)).status == 200


async def test_invalid_bodies_are_refused_before_anything_else() -> None:
    d, kafka, _, feed = desk()
    feed.ready = False
    assert (await d.submit(body(amount="0"), JSON)).status == 422
    assert (await d.submit(body(), "text/plain")).status == 415
    assert kafka.sent == []
    assert counted(d, "invalid") == 2


async def test_redis_unavailable_makes_a_lookup_503_and_a_post_go_ahead() -> None:
    d, _, store, _ = desk()
    store.unavailable["recall_decision"] = 2
    assert (await d.lookup("q-1", "u-1")).status == 503
    assert (await d.submit(body(request_id="q-1"), JSON)).status == 200
