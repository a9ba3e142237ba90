"""The HTTP decision API of a real worker process: answers are the records on the decision
topic byte for byte, once per request id, within the wait or later by polling; bad bodies are
refused naming their fields and never published; 200 parallel requests each get their own
decision. The latency test prints POST against a plain Kafka round trip in the same run."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from schemas.http import Problem
from schemas.models import LoanDecision, LoanRequest
from streams.adapters.kafka.client import producer_options
from streams.adapters.kafka.read import Tail
from streams.devtools.simulation import population_events, requests, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, request_doc
from tests.e2e.conftest import PrivateRedis, WorkerProcess, running_worker
from tests.support import produce, read_to_end, redis_states, wait_for

SEED = 23
JSON = {"Content-Type": "application/json"}


def base_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.settings.web_port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def api_ready(worker: WorkerProcess) -> None:
    """Wait until the worker's decision API takes requests (its decision tail is positioned)."""

    async def ready() -> bool:
        return "decision API ready" in worker.log()

    await wait_for(ready, message="the decision API")


async def post(
    http: aiohttp.ClientSession, worker: WorkerProcess, body: bytes, headers: Any = None
) -> tuple[int, bytes, Any]:
    url = base_url(worker) + "/v1/decisions"
    async with http.post(url, data=body, headers=JSON if headers is None else headers) as r:
        return r.status, await r.read(), r.headers


async def get(http: aiohttp.ClientSession, worker: WorkerProcess, path: str) -> tuple[int, bytes]:
    async with http.get(base_url(worker) + path) as response:
        return response.status, await response.read()


@dataclass(frozen=True)
class Ask:
    """A loan request to post, and the bytes to post."""

    model: LoanRequest
    key: bytes
    value: bytes


async def population(settings: Settings, users: int, prefix: str) -> list[Ask]:
    """Publish the histories of ``users`` simulated users, wait until they are folded, and
    return one loan request per user (not published)."""
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    history = [to_record(e) for e in population_events(users, SEED, now, prefix)]
    await produce(settings, [(topics.topic_for(r.kind), r.key, r.value) for r in history])

    async def folded() -> bool:
        return len(await redis_states(settings)) >= users

    await wait_for(folded, timeout=120, message=f"{users} users folded")
    asks = []
    for record in requests(users, SEED, datetime.now(UTC), prefix):
        assert isinstance(record.model, LoanRequest)
        asks.append(Ask(record.model, record.key, record.value))
    return asks


async def decisions_on_the_topic(settings: Settings) -> dict[str, list[bytes]]:
    """Every decision record's value on the decision topic, by request id."""
    found: dict[str, list[bytes]] = {}
    for record in await read_to_end(settings, Topics.from_settings(settings).loan_decisions):
        request_id = LoanDecision.model_validate_json(record.value).request_id
        found.setdefault(request_id, []).append(record.value)
    return found


async def test_a_post_is_answered_with_the_published_decision_once_per_request_id(
    worker: WorkerProcess, http: aiohttp.ClientSession
) -> None:
    settings = worker.settings
    [ask] = await population(settings, 1, "http")
    await api_ready(worker)
    status, body, headers = await post(http, worker, ask.value)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    decision = LoanDecision.model_validate_json(body)
    assert (decision.request_id, decision.user_id) == (ask.model.request_id, ask.model.user_id)
    assert await decisions_on_the_topic(settings) == {decision.request_id: [body]}
    # The same request again: the same bytes, republished from the memory, decided once.
    again, repeated, _ = await post(http, worker, ask.value)
    assert (again, repeated) == (200, body)
    assert await decisions_on_the_topic(settings) == {decision.request_id: [body, body]}
    assert worker.counter("creditline_decisions_total") == 1
    topic = Topics.from_settings(settings).loan_requests
    assert worker.counter("creditline_records_duplicate_total", topic=topic) == 1
    # And by polling, from Redis.
    looked_up = await get(
        http, worker, f"/v1/decisions/{decision.request_id}?user_id={decision.user_id}"
    )
    assert looked_up == (200, body)
    assert (await get(http, worker, f"/v1/decisions/nope?user_id={decision.user_id}"))[0] == 404
    assert worker.counter("creditline_http_decision_requests_total", outcome="answered") == 2
    assert worker.counter("creditline_http_decision_wait_seconds_count") == 2
    assert worker.counter("creditline_http_decision_lookups_total", outcome="found") == 1
    assert decision.user_id not in worker.log()  # no personal data in the log
    assert decision.user_id not in worker.metrics_text()


async def test_bad_bodies_are_refused_naming_their_fields_and_never_published(
    worker: WorkerProcess, http: aiohttp.ClientSession
) -> None:
    await api_ready(worker)
    now = datetime.now(UTC).isoformat()
    doc = request_doc(requested_at=now)
    cases: list[tuple[bytes, dict[str, str], int, list[tuple[str, str]]]] = [
        (encode({**doc, "amount": "-1"}), JSON, 422, [("amount", "WRONG_TYPE")]),
        (encode({**doc, "amount": 0}), JSON, 422, [("amount", "AMOUNT_OUT_OF_RANGE")]),
        (
            encode({k: v for k, v in doc.items() if k != "user_id"}),
            JSON,
            422,
            [("user_id", "MISSING_FIELD")],
        ),
        (b"[1, 2, 3]", JSON, 422, [("", "NOT_OBJECT")]),
        (b"key-less nonsense", JSON, 422, [("", "NOT_JSON")]),
        (encode(doc), {"Content-Type": "text/plain"}, 415, []),
        (encode(doc), {}, 415, []),
        (encode({**doc, "pad": "x" * 100_000}), JSON, 413, [("", "OVERSIZED")]),
    ]
    for body, headers, status, errors in cases:
        got, reply, response_headers = await post(http, worker, body, headers)
        assert got == status, (body[:60], reply)
        assert response_headers["Content-Type"] == "application/problem+json"
        problem = Problem.model_validate_json(reply)
        assert [(e.field, e.code) for e in problem.errors] == errors
        for error in problem.errors:
            assert f"{error.field or 'body'}: {error.message}" in problem.detail
    # Nothing reached the request topic: nothing consumed, nothing dead-lettered.
    topics = Topics.from_settings(worker.settings)
    assert await read_to_end(worker.settings, topics.loan_requests) == []
    assert worker.counter("creditline_http_decision_requests_total", outcome="invalid") == len(
        cases
    )
    lookup, reply = await get(http, worker, "/v1/decisions/q%201")
    assert lookup == 422
    assert [e.field for e in Problem.model_validate_json(reply).errors] == [
        "request_id",
        "user_id",
    ]


async def test_200_parallel_posts_for_different_users_each_get_their_own_decision(
    worker: WorkerProcess, http: aiohttp.ClientSession
) -> None:
    asks = await population(worker.settings, 200, "par")
    await api_ready(worker)
    started = time.perf_counter()
    replies = await asyncio.gather(*(post(http, worker, ask.value) for ask in asks))
    elapsed = time.perf_counter() - started
    assert Counter(status for status, _, _ in replies) == {200: 200}
    on_topic = await decisions_on_the_topic(worker.settings)
    for ask, (_, body, _) in zip(asks, replies, strict=True):
        decision = LoanDecision.model_validate_json(body)
        assert (decision.request_id, decision.user_id) == (ask.model.request_id, ask.key.decode())
        assert on_topic[decision.request_id] == [body]
    assert len(on_topic) == 200
    outcomes = Counter(LoanDecision.model_validate_json(b).outcome.value for _, b, _ in replies)
    print(f"\n200 parallel POSTs answered in {elapsed:.2f} s; outcomes {dict(outcomes)}")


async def test_post_latency_against_the_kafka_round_trip(
    worker: WorkerProcess, http: aiohttp.ClientSession
) -> None:
    """Sequential requests, half through the API and half straight through Kafka (publish,
    then wait for the decision on a tail positioned before), alternating, in the same run."""
    asks = await population(worker.settings, 200, "lat")
    await api_ready(worker)
    settings = worker.settings
    topics = Topics.from_settings(settings)
    through_http: list[float] = []
    through_kafka: list[float] = []
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        async with Tail(settings, [topics.loan_decisions]) as tail:
            batches = tail.batches(timeout_ms=50)
            for index, ask in enumerate(asks):
                started = time.perf_counter()
                if index % 2 == 0:
                    status, _, _ = await post(http, worker, ask.value)
                    assert status == 200
                    through_http.append(time.perf_counter() - started)
                    continue
                await producer.send_and_wait(topics.loan_requests, ask.value, key=ask.key)
                answered = False
                while not answered:
                    batch = await anext(batches)
                    answered = any(
                        LoanDecision.model_validate_json(r.value).request_id == ask.model.request_id
                        for r in batch
                    )
                through_kafka.append(time.perf_counter() - started)
    finally:
        await producer.stop()

    def quantiles(samples: list[float]) -> str:
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"

    print(
        f"\nPOST /v1/decisions ({len(through_http)}): {quantiles(through_http)}; "
        f"Kafka round trip ({len(through_kafka)}): {quantiles(through_kafka)}"
    )


async def test_a_wait_that_runs_out_is_504_and_the_decision_is_polled_later(
    worker_settings: Settings,
    private_redis: PrivateRedis,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """The decider's Redis pauses its writes (CLIENT PAUSE … WRITE on a Redis of the test's
    own) for longer than the wait: the decision is made, remembered and published only after
    the POST has been answered 504; GET says pending, then returns the published bytes."""
    settings = worker_settings.model_copy(
        update={"redis_url": SecretStr(private_redis.url), "http_decision_wait_seconds": 0.3}
    )
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        await api_ready(worker)
        body = encode(request_doc(request_id="q-slow", requested_at=datetime.now(UTC).isoformat()))
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            await client.client_pause(1500, all=False)  # writes only
            status, reply, headers = await post(http, worker, body)
        finally:
            await client.aclose()
        assert status == 504, reply
        problem = Problem.model_validate_json(reply)
        poll = problem.poll
        assert (problem.request_id, poll) == ("q-slow", "/v1/decisions/q-slow?user_id=u-1")
        assert poll is not None and headers["Location"] == poll
        assert (await get(http, worker, poll))[0] == 202

        async def decided() -> bytes | None:
            status, reply = await get(http, worker, poll)
            return reply if status == 200 else None

        polled = await wait_for(decided, message="the decision by GET")
        assert await decisions_on_the_topic(settings) == {"q-slow": [polled]}
        assert worker.counter("creditline_http_decision_requests_total", outcome="timeout") == 1
        assert worker.counter("creditline_http_decision_lookups_total", outcome="pending") >= 1
