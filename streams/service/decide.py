"""Answering loan requests: decode → the user's standing at the request's instant → decide →
remember once per ``request_id`` → publish.

:class:`LoanDecider` reads only the user's stored checkpoint (and the ledger when the
request's instant is before it), so one user's history never slows another's answer. It
never approves blindly: without a successful read a person reviews.

A candidate in shadow answers each fresh request too, once the live decisions are out, and
never delays a live answer (:mod:`streams.service.shadowing`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.answer import answer, answer_in_full, judgement_instant, request_digest
from streams.core.decision import (
    decide_at_capacity,
    decide_policy_unavailable,
    decide_score_unavailable,
)
from streams.core.decoding import RejectedRecord, decode_record
from streams.core.reasons import ReasonCode
from streams.core.scoring import Assessment
from streams.core.shadow import Candidate
from streams.core.timeline import (
    START,
    Checkpoint,
    PolicyTimeline,
    at_time,
    canonical,
    needs_ledger_at,
)
from streams.errors import OperatorActionRequired, ShuttingDown, Unavailable
from streams.metrics import Metrics
from streams.ports import InboundRecord, RecordSink, StateStore, StoredUser
from streams.service.request_flow import BatchAnswers, Unanswered, UserOrder, after
from streams.service.shadowing import ShadowAsk, ShadowOutbox, answer_in_shadow
from streams.service.shell import (
    MESSAGES,
    DeadLetterer,
    Retrier,
    ServiceCode,
    decode_limits,
    utc_now,
)
from streams.service.stability import ScorecardMonitor
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")


#: Requests answered at once, at most: their Redis waits overlap, and a backlog read in one
#: batch (up to ``batch_max_records``) never opens a connection per request.
REQUESTS_IN_FLIGHT = 32
#: Requests handed over and not yet answered, at most, before :meth:`LoanDecider.begin` makes
#: the consumer wait: a slow store holds the reading back instead of piling requests up.
REQUESTS_UNANSWERED = 1024


class RequestConflict(Exception):
    """A request id already answered for a request with another body."""


@dataclass(frozen=True)
class _Standing:
    """What a fresh decision was made from: the user's checkpoint at the last review ≤ the
    instant judged, and the user's events when they were read (else empty)."""

    checkpoint: Checkpoint
    events: Sequence[InputEvent]


@dataclass(frozen=True)
class Answered:
    """A request's decision, its wire bytes, whether it was decided before, the assessment it
    was decided from (None without one) and, when a candidate is in shadow, what it answers
    from."""

    decision: LoanDecision
    payload: bytes
    repeated: bool = False
    assessment: Assessment | None = None
    shadow: ShadowAsk | None = None


class LoanDecider:
    """Answers loan requests from the live state, idempotently per ``request_id``."""

    agent = "answer_loan_requests"

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        sink: RecordSink,
        metrics: Metrics,
        timelines: Callable[[], PolicyTimeline],
        *,
        clock: Callable[[], datetime] = utc_now,
        should_stop: Callable[[], bool] = lambda: False,
        policy_confirmed: Callable[[datetime], Awaitable[bool]] | None = None,
        candidate: Callable[[], Candidate | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.timelines = timelines
        self.clock = clock
        self.topics = Topics.from_settings(settings)
        self.limits = decode_limits(settings)
        self.retry = Retrier(metrics, should_stop)
        self.dead_letters = DeadLetterer(
            self.agent, settings, sink, self.topics.dead_letter, metrics, clock
        )
        #: Whether every policy version in force at an instant is known (waits a little).
        self.policy_confirmed = policy_confirmed
        self._policy_gate = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(REQUESTS_IN_FLIGHT)
        self.monitor = ScorecardMonitor(metrics, settings.scorecard_psi_window)
        #: What is in shadow now (answers every fresh request beside the live configuration).
        self.candidate = candidate
        #: Batches being answered now (their publishing may still be under way).
        self._answering = 0
        #: A user's requests answered in record order, across batches too.
        self.user_order = UserOrder()
        #: Requests handed to :meth:`begin` and not yet answered.
        self.unanswered = Unanswered(REQUESTS_UNANSWERED)
        #: Requests for the candidate to answer, and its decisions on their way out.
        self.shadow_outbox = ShadowOutbox(
            sink,
            self.topics.loan_decisions_shadow,
            metrics,
            partial(
                answer_in_shadow,
                horizon=self.limits.horizon,
                language=settings.reason_language,
            ),
        )

    def tick(self) -> None:
        """Called every second or so: a storm ends on a quiet topic too."""
        self.dead_letters.tick()

    async def process(self, records: Sequence[InboundRecord]) -> list[LoanDecision]:
        """Answer each request (or dead-letter it) and wait until every answer is published;
        returns the decisions published."""
        decisions, delivered = await self.submit(records)
        await delivered
        return decisions

    async def begin(self, records: Sequence[InboundRecord]) -> Awaitable[None]:
        """Start answering ``records`` beside the batches still being answered; returns what
        completes once every answer is published (it raises if one was not, or if answering
        failed: nothing of ``records`` may then be committed). A request never waits for
        another user's answer in an earlier batch: a request that arrives while one stalls on
        Redis is answered meanwhile. First waits while :data:`REQUESTS_UNANSWERED` are."""
        await self.unanswered.take(len(records))
        return asyncio.ensure_future(self._answered_and_published(records))

    async def _answered_and_published(self, records: Sequence[InboundRecord]) -> None:
        try:
            _, delivered = await self.submit(records)
        finally:
            await self.unanswered.answered(len(records))
        await delivered

    async def submit(
        self, records: Sequence[InboundRecord]
    ) -> tuple[list[LoanDecision], Awaitable[None]]:
        """Answer each request (or dead-letter it) and hand the answers to the producer;
        returns the decisions and what completes once Kafka has acknowledged them all (it
        raises if one was not: nothing of ``records`` may then be acknowledged). The next
        requests can be answered meanwhile: an answer's time is not a produce round trip
        more per request ahead of it in the queue."""
        self._answering += 1
        try:
            return await self._submit(records)
        finally:
            self._answering -= 1

    async def _submit(
        self, records: Sequence[InboundRecord]
    ) -> tuple[list[LoanDecision], Awaitable[None]]:
        answers = BatchAnswers(len(records))
        self.shadow_outbox.busy()
        # Each request is answered in a task of its own (at most REQUESTS_IN_FLIGHT at once),
        # a user's requests one after the other in record order, across batches too: while
        # one waits for Redis, the next is decided, so a batch of n requests costs n
        # decisions' CPU and about two round trips, not 2n round trips one after the other
        # (the requests that piled up behind a stall are answered in a few ms instead of
        # tens). A stop or an operator error fails the whole batch as before: the other
        # tasks are cancelled and nothing of it is committed.
        try:
            async with asyncio.TaskGroup() as group:
                for index, record in enumerate(records):
                    self.metrics.records_consumed.labels(record.topic).inc()
                    received = self.clock()
                    try:
                        request = decode_record(
                            self.topics.kind_of(record.topic),
                            record.key,
                            record.value,
                            now=received,
                            limits=self.limits,
                            headers=record.headers,
                        )
                    except RejectedRecord as rejected:
                        answers.deliveries.append(
                            await self.dead_letters.reject(record, rejected.code, rejected.message)
                        )
                        continue
                    self.dead_letters.accepted()
                    assert isinstance(request, LoanRequest)
                    arrival = received
                    if record.log_append_time and record.timestamp is not None:
                        arrival = datetime.fromtimestamp(record.timestamp, UTC)
                    before = self.user_order.latest(request.user_id)
                    times = (arrival, received)
                    answering = self._settle(before, answers, index, record, request, times)
                    self.user_order.add(request.user_id, group.create_task(answering))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        self.dead_letters.watch_storm()
        # The candidate's decisions made since the last batch ride with these live ones.
        await self.shadow_outbox.flush()
        return answers.decisions(), self._published(answers.deliveries, answers.shadows())

    async def _settle(
        self,
        before: asyncio.Task[None] | None,
        answers: BatchAnswers,
        index: int,
        record: InboundRecord,
        request: LoanRequest,
        times: tuple[datetime, datetime],
    ) -> None:
        """Answer one request (after ``before``, the same user's request ahead of it),
        publish its decision or dead-letter it, and count it."""
        await after(before, request.request_id)
        arrival, received = times
        try:
            async with self._in_flight:
                answered = await self._answer(request, arrival, received)
        except (OperatorActionRequired, ShuttingDown):
            raise
        except RequestConflict:
            code = ServiceCode.CONFLICTING_REQUEST_ID
            answers.deliveries.append(await self.dead_letters.reject(record, code, MESSAGES[code]))
            return
        except Exception:
            # A bug (arithmetic at an extreme…) must not stop the worker: never silent.
            log.exception("answering a loan request failed; dead-lettering it")
            code = ServiceCode.PROCESSING_ERROR
            answers.deliveries.append(await self.dead_letters.reject(record, code, MESSAGES[code]))
            return
        decision, repeated = answered.decision, answered.repeated
        answers.deliveries.append(
            await self.sink.send(
                self.topics.loan_decisions, request.user_id.encode(), answered.payload
            )
        )
        answers.answered[index] = (decision, answered.shadow)
        if repeated:
            self.metrics.records_duplicate.labels(record.topic).inc()
        else:
            self.metrics.records_applied.labels(record.topic).inc()
            self.metrics.decisions.labels(decision.outcome.value).inc()
            self.metrics.decisions_by_status.labels(
                decision.displayed_status.value, decision.effective_status.value
            ).inc()
            if decision.overrides_displayed_status:
                self.metrics.decision_overrides.inc()
            self.monitor.observe(decision, answered.assessment)
        if record.timestamp is not None:
            self.metrics.decision_seconds.observe(max(0.0, time.time() - record.timestamp))

    async def _published(
        self, deliveries: list[Awaitable[Any]], shadows: list[tuple[LoanDecision, ShadowAsk]]
    ) -> None:
        await asyncio.gather(*deliveries)
        # The live decisions are out: the candidate answers when the decider is idle.
        for live, ask in shadows:
            self.shadow_outbox.ask(live, ask)
        if not self._answering:
            self.shadow_outbox.idle()

    async def _bounded(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a store call for at most ``score_unavailable_wait_seconds``."""
        wait = self.settings.score_unavailable_wait_seconds
        return await self.retry.bounded(operation, call, wait)

    async def _standing_at(
        self, request: LoanRequest, at: datetime
    ) -> tuple[StoredUser, _Standing]:
        """The user's stored record and checkpoint at the last review instant ≤ ``at`` (reads
        the ledger only when the stored checkpoint does not reach ``at`` by time alone)."""
        stored = await self._bounded("read_state", partial(self.store.read_user, request.user_id))
        ledger = None
        if needs_ledger_at(stored.checkpoint, stored.latest_event_at, at, self.limits.horizon):
            ledger = await self._bounded(
                "read_ledger", partial(self.store.read_ledger, request.user_id)
            )
        checkpoint = at_time(stored.checkpoint, ledger, self.timelines(), at, self.limits.horizon)
        return stored, _Standing(checkpoint, canonical(list(ledger or ())))

    async def _policy_known(self, at: datetime) -> bool:
        """Whether every policy version in force at ``at`` is known (waits a little). A
        batch's requests ask in turn, in record order: requests that arrive before the policy
        topic is read (a worker starting) each wait in turn, not all reviewed at the end of
        one shared wait."""
        if self.policy_confirmed is None:
            return True
        async with self._policy_gate:
            return await self.policy_confirmed(at)

    async def _answer(
        self, request: LoanRequest, arrival: datetime, received: datetime
    ) -> Answered:
        """The decision for a request (see :class:`Answered`)."""
        timelines = self.timelines()
        language = self.settings.reason_language
        tolerance = timedelta(seconds=self.settings.request_time_tolerance_seconds)
        at = judgement_instant(request, arrival, tolerance)
        assessment: Assessment | None = None
        standing: _Standing | None = None
        if at is None:
            decision = answer(request, START, timelines, None, received, language)
        elif not await self._policy_known(at):
            decision = decide_policy_unavailable(request, received, timelines.at(at), language)
        else:
            timelines = self.timelines()  # the view confirmed to cover ``at``
            try:
                stored, standing = await self._standing_at(request, at)
            except Unavailable:
                # Never approve blindly: without a successful read a person reviews.
                policy = timelines.at(at)
                decision = decide_score_unavailable(request, received, policy, language)
                return Answered(decision, decision.model_dump_json().encode())
            if stored.at_capacity:
                # Events or loans beyond what is kept were refused: the history is incomplete.
                code = (
                    ReasonCode.EVENT_LIMIT_REACHED
                    if "events" in stored.at_capacity
                    else ReasonCode.LOAN_LIMIT_REACHED
                )
                policy = timelines.at(at)
                decision = decide_at_capacity(
                    request, received, policy, code, language, evaluated_at=at
                )
                standing = None
            else:
                decision, assessment = answer_in_full(
                    request, standing.checkpoint, timelines, at, received, language
                )
        payload = decision.model_dump_json().encode()
        ttl = self.settings.decision_retention_days * 86400
        digest = request_digest(request)
        try:
            earlier = await self._bounded(
                "remember_decision",
                lambda: self.store.remember_decision(
                    request.user_id, request.request_id, payload, ttl, digest
                ),
            )
        except Unavailable:
            # Unrecorded decisions could differ on redelivery; only a review is safe.
            decision = decide_score_unavailable(request, received, timelines.at(received), language)
            return Answered(decision, decision.model_dump_json().encode())
        if earlier is not None:
            if earlier.request_digest != digest:
                raise RequestConflict(request.request_id)
            earlier_decision = LoanDecision.model_validate_json(earlier.payload)
            return Answered(earlier_decision, earlier.payload, repeated=True)
        candidate = self.candidate()
        if candidate is None:
            return Answered(decision, payload, assessment=assessment)
        shadow = ShadowAsk(
            candidate,
            request,
            timelines,
            at,
            received,
            standing.checkpoint if standing is not None else None,
            standing.events if standing is not None else (),
        )
        return Answered(decision, payload, assessment=assessment, shadow=shadow)
