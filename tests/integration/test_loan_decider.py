"""Loan requests answered from the live state in the real Redis, onto the real Kafka."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas import dead_letter
from schemas.models import LoanDecision, LoanRequest, Outcome
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import producer_options
from streams.adapters.kafka.requests import RequestConsumer
from streams.adapters.kafka.sink import AioKafkaSink
from streams.core.policy import load_default_policy
from streams.core.timeline import constant
from streams.devtools.simulation import Persona, persona_history, to_record
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.service.decide import LoanDecider
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, repayment_doc, request_doc
from tests.conftest import cleanup, isolated
from tests.integration.test_event_folder import chunks, run_folder
from tests.support import (
    as_inbound,
    committed_lag,
    headers_of,
    produce,
    read_to_end,
    read_topic,
    store_for,
    wait_for,
)


async def fold_persona(settings: Settings, persona: Persona, user: str) -> None:
    import random

    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    records = [to_record(e) for e in persona_history(persona, user, now, random.Random(3))]
    await produce(settings, [(topics.topic_for(r.kind), r.key, r.value) for r in records])
    consumed: list[InboundRecord] = []
    for topic in topics.events:
        consumed.extend(as_inbound(await read_to_end(settings, topic)))
    await run_folder(settings, chunks([c for c in consumed if c.key == user.encode()], 100))


async def answer(
    settings: Settings,
    docs: list[dict[str, object]],
    metrics: Metrics | None = None,
    took: list[float] | None = None,
) -> list[LoanDecision]:
    """Publish requests, read them back and answer them; ``took`` gets the seconds the
    decider spent (without the test's own Kafka round trips)."""
    topics = Topics.from_settings(settings)
    already = len(await read_to_end(settings, topics.loan_requests))
    await produce(
        settings, [(topics.loan_requests, str(d["user_id"]).encode(), encode(d)) for d in docs]
    )
    consumed = as_inbound(
        await read_topic(settings, topics.loan_requests, expect=already + len(docs))
    )
    consumed.sort(key=lambda r: (r.timestamp or 0, r.partition, r.offset))
    metrics = metrics or Metrics()
    producer = AIOKafkaProducer(
        **producer_options(settings),
    )
    await producer.start()
    store = store_for(settings, metrics)
    try:
        timelines = constant(load_default_policy())
        decider = LoanDecider(settings, store, AioKafkaSink(producer), metrics, lambda: timelines)
        started = time.monotonic()
        decisions = await decider.process(consumed[already:])
        if took is not None:
            took.append(time.monotonic() - started)
        return decisions
    finally:
        await store.close()
        await producer.stop()


def now_doc(**overrides: object) -> dict[str, object]:
    return request_doc(requested_at=datetime.now(UTC).isoformat(), **overrides)


async def test_stale_closed_display_is_approved_from_the_live_score(settings: Settings) -> None:
    await fold_persona(settings, Persona.RECOVERING, "u-rec")
    [decision] = await answer(
        settings,
        [now_doc(user_id="u-rec", request_id="q-rec", amount="2000.00", displayed_status="closed")],
    )
    assert decision.outcome is Outcome.APPROVED
    assert decision.effective_status.value == "open"
    assert decision.overrides_displayed_status
    decisions = await read_topic(settings, Topics.from_settings(settings).loan_decisions, expect=1)
    assert [LoanDecision.model_validate_json(r.value) for r in decisions] == [decision]
    assert decisions[0].key == b"u-rec"


async def test_open_display_is_declined_after_a_missed_payment(settings: Settings) -> None:
    await fold_persona(settings, Persona.SLIPPING, "u-slip")
    [decision] = await answer(
        settings, [now_doc(user_id="u-slip", request_id="q-slip", displayed_status="open")]
    )
    assert decision.outcome is Outcome.DECLINED
    assert decision.effective_status.value == "frozen"
    assert decision.overrides_displayed_status
    assert decision.reasons[0].code == "FROZEN_PAST_DUE"


async def test_unknown_user_gets_review_with_no_history(settings: Settings) -> None:
    [decision] = await answer(settings, [now_doc(user_id="u-new", request_id="q-new")])
    assert decision.outcome is Outcome.REVIEW
    assert [r.code for r in decision.reasons] == ["NO_HISTORY"]


async def test_a_redelivered_request_gets_the_same_decision(settings: Settings) -> None:
    await fold_persona(settings, Persona.STEADY, "u-st")
    doc = now_doc(user_id="u-st", request_id="q-same", displayed_status="open")
    metrics = Metrics()
    [first] = await answer(settings, [doc], metrics)
    assert first.outcome is Outcome.APPROVED
    # Meanwhile the user misses a payment: new requests are declined, but the redelivered
    # one keeps the decision it already had.
    topics = Topics.from_settings(settings)
    missed = repayment_doc(
        event_id="u-st:late",
        user_id="u-st",
        days_past_due=40,
        amount_paid="0",
        occurred_at=datetime.now(UTC).isoformat(),
    )
    await produce(settings, [(topics.repayments, b"u-st", encode(missed))])
    late = [
        r
        for r in as_inbound(await read_to_end(settings, topics.repayments))
        if r.value == encode(missed)
    ]
    await run_folder(settings, [late])
    fresh = now_doc(user_id="u-st", request_id="q-fresh", displayed_status="open")
    again = await answer(settings, [doc, fresh, doc], metrics)
    assert again[0] == first
    assert again[2] == first
    assert again[1].outcome is Outcome.DECLINED
    assert (
        metrics.registry.get_sample_value(
            "creditline_records_duplicate_total", {"topic": topics.loan_requests}
        )
        == 2.0
    )
    published = await read_topic(settings, topics.loan_decisions, expect=4)
    same = {r.value for r in published if b'"q-same"' in r.value}
    assert len(same) == 1


async def test_unreachable_redis_gives_a_bounded_review_never_an_approval(
    base_settings: Settings,
) -> None:
    from streams.adapters.kafka.admin import ensure_topics
    from streams.devtools.stack.local import port_open
    from tests.conftest import cleanup, isolated

    dead_port = 6390
    assert not port_open("127.0.0.1", dead_port)
    s = isolated(
        base_settings,
        redis_url=f"redis://127.0.0.1:{dead_port}/0",
        score_unavailable_wait_seconds=1.0,
    )
    await ensure_topics(s)
    took: list[float] = []
    try:
        [decision] = await answer(s, [now_doc(user_id="u-x", request_id="q-x")], took=took)
    finally:
        await cleanup(s.model_copy(update={"redis_url": base_settings.redis_url}))
    assert decision.outcome is Outcome.REVIEW
    assert [r.code for r in decision.reasons] == ["SCORE_UNAVAILABLE"]
    # Bounded: the decider's own time (the configured 1 s wait), not the test's round trips.
    assert took[0] < 15


async def test_malformed_requests_are_dead_lettered(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    good = now_doc(user_id="u-g", request_id="q-g")
    bad = now_doc(user_id="u-g", request_id="q-b", displayed_status="sideways")
    decisions = await answer(settings, [good, bad])
    assert [d.request_id for d in decisions] == ["q-g"]
    letters = await read_topic(settings, topics.dead_letter, expect=1)
    assert len(letters) == 1
    assert dict(letters[0].headers)["error.code"] == b"INVALID_ENUM"


async def test_a_request_that_cannot_be_answered_is_dead_lettered_and_the_rest_answered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.core.answer
    from streams.core.decision import decide as real_decide

    def decide(request: LoanRequest, *args: Any, **kwargs: Any) -> LoanDecision:
        if request.request_id == "q-bad":
            raise OverflowError("date value out of range")  # a bug at an extreme
        return real_decide(request, *args, **kwargs)

    await fold_persona(settings, Persona.STEADY, "u-1")
    monkeypatch.setattr(streams.core.answer, "decide", decide)
    metrics = Metrics()
    decisions = await answer(
        settings, [now_doc(request_id="q-bad"), now_doc(request_id="q-good")], metrics
    )
    assert [d.request_id for d in decisions] == ["q-good"]
    topics = Topics.from_settings(settings)
    [letter] = await read_topic(settings, topics.dead_letter, expect=1)
    assert headers_of(letter)[dead_letter.HEADER_ERROR_CODE] == "PROCESSING_ERROR"
    counted = metrics.registry.get_sample_value(
        "creditline_records_dead_lettered_total",
        {"topic": topics.loan_requests, "reason": "PROCESSING_ERROR"},
    )
    assert counted == 1.0


async def test_a_request_id_reused_with_another_body_is_a_conflict_never_the_old_answer(
    settings: Settings,
) -> None:
    await fold_persona(settings, Persona.STEADY, "u-re")
    doc = now_doc(user_id="u-re", request_id="q-re", amount="1000.00", displayed_status="open")
    [first] = await answer(settings, [doc])
    assert first.outcome is Outcome.APPROVED
    # The same request again: the same decision. Another amount under that id: a conflict.
    again = await answer(settings, [doc, {**doc, "amount": "250000.00"}])
    assert [d.request_id for d in again] == ["q-re"]
    assert again[0] == first
    letters = await read_topic(settings, Topics.from_settings(settings).dead_letter, expect=1)
    assert [headers_of(r)[dead_letter.HEADER_ERROR_CODE] for r in letters] == [
        "CONFLICTING_REQUEST_ID"
    ]


async def test_a_users_requests_in_batches_answered_side_by_side_are_published_in_order(
    base_settings: Settings,
) -> None:
    """The request consumer hands each batch to the decider and reads on, so many batches
    are answered at once; each user's decisions still reach the topic in the order of the
    user's requests, each once, and every request is committed."""
    settings = isolated(base_settings, partitions=2, batch_max_records=3)
    await ensure_topics(settings)
    try:
        topics = Topics.from_settings(settings)
        # Users whose answers cost differently (a declined one computes its path back, an
        # unknown one reads nothing), so that later batches can finish first.
        await fold_persona(settings, Persona.STEADY, "u-steady")
        await fold_persona(settings, Persona.SLIPPING, "u-slipping")
        users = ["u-steady", "u-slipping", "u-new-1", "u-new-2"]
        docs = [
            now_doc(user_id=user, request_id=f"{user}:{n:03d}", displayed_status="open")
            for n in range(40)
            for user in users
        ]
        await produce(
            settings,
            [(topics.loan_requests, str(d["user_id"]).encode(), encode(d)) for d in docs],
        )
        store = store_for(settings, Metrics())
        producer = AIOKafkaProducer(**producer_options(settings))
        await producer.start()
        timelines = constant(load_default_policy())
        decider = LoanDecider(settings, store, AioKafkaSink(producer), Metrics(), lambda: timelines)
        consumer = RequestConsumer(settings, topics.loan_requests, decider.begin)
        stop = asyncio.Event()
        await consumer.start()
        run = asyncio.create_task(consumer.run(stop.is_set))
        try:
            published = await read_topic(settings, topics.loan_decisions, expect=len(docs))

            async def committed() -> bool:
                lag = await committed_lag(
                    settings, [topics.loan_requests], settings.decisions_group
                )
                return lag == 0

            await wait_for(committed, message="every request committed")
        finally:
            stop.set()
            await asyncio.wait_for(run, 30)
            await consumer.stop()
            await producer.stop()
            await store.close()
        decided = [LoanDecision.model_validate_json(r.value) for r in published]
        assert sorted(d.request_id for d in decided) == sorted(str(d["request_id"]) for d in docs)
        for user in users:
            in_order = [d.request_id for d in decided if d.user_id == user]
            assert in_order == [f"{user}:{n:03d}" for n in range(40)], user
        outcomes = {d.user_id: d.outcome for d in decided}
        assert outcomes["u-steady"] is Outcome.APPROVED
        assert outcomes["u-slipping"] is Outcome.DECLINED
    finally:
        await cleanup(settings)
