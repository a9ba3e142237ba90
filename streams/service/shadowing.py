"""A candidate in shadow inside the decider: when it answers and how its decisions go out, so
that it never delays a live answer.

* **When the decider is idle.** A shadow answer costs about what the live one does (a second
  decision, with its path back). The decider hands the candidate each fresh request once the
  live decision is acknowledged by Kafka, with the standing the live answer was read from
  (:class:`ShadowAsk`: nothing is read again), and the candidate answers only when no request
  has come for :data:`IDLE_SECONDS`, for at most :data:`BUDGET_SECONDS` at a time — so its
  work fills the gaps between requests instead of queueing before the next one. When requests
  never leave such a gap, each request beyond :data:`MAX_WAITING` waiting has the oldest one
  answered at once: every request is answered in shadow, at the rate requests come.
* **Never one more round trip before a live decision.** A Kafka producer keeps one produce
  request in flight per broker: a shadow record sent on its own while a live decision follows
  would make that decision wait for its acknowledgement. So the candidate's decisions ride in
  the produce request of the next live decision (queued right after it), or go out on their
  own after :data:`FLUSH_SECONDS` without one.
* **Not waited for.** Their deliveries are tracked and a failed one is logged; a shadow
  decision lost in a crash is not made again (a redelivered request gets the remembered live
  decision, and no shadow one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.reasons import Language
from streams.core.shadow import Candidate, shadow_answer
from streams.core.timeline import Checkpoint, PolicyTimeline
from streams.metrics import Metrics
from streams.ports import RecordSink

log = logging.getLogger(__name__)

#: The candidate answers once no request has come for this long.
IDLE_SECONDS = 0.001
#: …for at most this long before it waits for the next gap (at least one answer)…
BUDGET_SECONDS = 0.002
#: …or at once, for the oldest, when this many requests wait for its answer.
MAX_WAITING = 200
#: How long the candidate's decisions wait for a live decision to ride with.
FLUSH_SECONDS = 0.05


@dataclass(frozen=True)
class ShadowAsk:
    """What the candidate answers a fresh request from: the candidate when the request was
    answered live, the live view, the instant judged, and the user's checkpoint and events
    the live answer used (``checkpoint`` None: answered without a standing — time not trusted,
    Redis or the policy topic not answering, a full history)."""

    candidate: Candidate
    request: LoanRequest
    timelines: PolicyTimeline
    at: datetime | None
    received: datetime
    checkpoint: Checkpoint | None
    events: Sequence[InputEvent] = ()


def answer_in_shadow(
    live: LoanDecision, ask: ShadowAsk, horizon: timedelta, language: Language
) -> LoanDecision:
    """The candidate's decision. A request answered without the user's standing gets the live
    answer under the candidate's name: it depends on none of the candidate's rules."""
    candidate, at = ask.candidate, ask.at
    if ask.checkpoint is None or at is None:
        policy = candidate.policy or ask.timelines.at(at or ask.received)
        return live.model_copy(update={"policy_version": policy.version})
    return shadow_answer(
        ask.request,
        ask.checkpoint,
        ask.events,
        ask.timelines,
        candidate,
        at,
        ask.received,
        horizon,
        language,
    )


class ShadowOutbox:
    """Requests waiting for the candidate's answer, and its decisions on their way to the
    shadow topic (see the module)."""

    def __init__(
        self,
        sink: RecordSink,
        topic: str,
        metrics: Metrics,
        answer: Callable[[LoanDecision, ShadowAsk], LoanDecision],
    ) -> None:
        self.sink = sink
        self.topic = topic
        self.metrics = metrics
        self.answer = answer
        #: Requests answered live, not yet by the candidate.
        self.asks: list[tuple[LoanDecision, ShadowAsk]] = []
        #: (key, value) of the candidate's decisions, not yet handed to the producer.
        self.waiting: list[tuple[bytes, bytes]] = []
        #: Handed to the producer, not yet acknowledged.
        self.deliveries: set[asyncio.Future[Any]] = set()
        self._idle: asyncio.TimerHandle | None = None
        self._flush: asyncio.TimerHandle | None = None

    def busy(self) -> None:
        """A request is being answered: the candidate waits."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def ask(self, live: LoanDecision, ask: ShadowAsk) -> None:
        """A request the live configuration answered, for the candidate to answer when the
        decider is idle (the oldest at once beyond :data:`MAX_WAITING`)."""
        self.asks.append((live, ask))
        if len(self.asks) > MAX_WAITING:
            self._answer(*self.asks.pop(0))
            self._flush_soon()

    def idle(self) -> None:
        """The decider answered its batch: the candidate answers if no request follows."""
        self.busy()
        if self.asks:
            self._idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._when_idle)

    def _when_idle(self) -> None:
        self._idle = None
        until = time.perf_counter() + BUDGET_SECONDS
        while self.asks:
            self._answer(*self.asks.pop(0))
            if time.perf_counter() >= until:
                break
        self._flush_soon()
        self.idle()  # the rest in the next gap

    def answer_waiting(self) -> None:
        """Answer every waiting request now (tests, shutdown)."""
        while self.asks:
            self._answer(*self.asks.pop(0))
        self._flush_soon()

    def _answer(self, live: LoanDecision, ask: ShadowAsk) -> None:
        """The candidate's answer, counted with the live one and kept until it can go out; a
        bug in the candidate is logged and counted, and never costs a live answer."""
        try:
            shadow = self.answer(live, ask)
        except Exception:
            log.exception("the candidate in shadow (%s) failed to answer", ask.candidate.label)
            self.metrics.shadow_decisions.labels(live.outcome.value, "failed").inc()
            return
        self.metrics.shadow_decisions.labels(live.outcome.value, shadow.outcome.value).inc()
        self.metrics.shadow_approved_amount.labels("live").inc(float(live.approved_amount))
        self.metrics.shadow_approved_amount.labels("shadow").inc(float(shadow.approved_amount))
        self.waiting.append((shadow.user_id.encode(), shadow.model_dump_json().encode()))

    def _flush_soon(self) -> None:
        if self.waiting and self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush_later)

    async def flush(self) -> None:
        """Hand every decision made to the producer (right after a live decision: they go in
        its produce request)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        waiting, self.waiting = self.waiting, []
        for key, value in waiting:
            try:
                delivery = asyncio.ensure_future(await self.sink.send(self.topic, key, value))
            except Exception:
                log.exception("a decision of the candidate in shadow could not be published")
                continue
            self.deliveries.add(delivery)
            delivery.add_done_callback(self._delivered)

    def _flush_later(self) -> None:
        self._flush = None
        task = asyncio.ensure_future(self.flush())
        self.deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[Any]) -> None:
        self.deliveries.discard(delivery)
        if not delivery.cancelled() and delivery.exception() is not None:
            log.error(
                "a decision of the candidate in shadow was not published (the live one was): %r",
                delivery.exception(),
            )

    async def drain(self) -> None:
        """Answer what waits, send it and wait until every delivery is settled (tests)."""
        self.busy()
        self.answer_waiting()
        await self.flush()
        while self.deliveries:
            # Discard what was awaited here: from Python 3.12 on, gathering futures that are
            # already done returns without yielding to the loop, so their done callbacks
            # (which discard them too) would never get to run and this would spin for ever.
            settled = list(self.deliveries)
            await asyncio.gather(*settled, return_exceptions=True)
            self.deliveries.difference_update(settled)
