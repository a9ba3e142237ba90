"""The HTTP decision API's service: a loan request in a body → published on the request topic
→ its decision as it appears on the decision topic, within a bounded wait.

Every answer goes through the log and the once-per-``request_id`` memory: the request is
published (key = user id) exactly as the worker's agent would read it from any producer, and
the reply is the decision record's value byte for byte. A request id already answered gets
that same decision again because the decider republishes a remembered decision for a
redelivered request. Looking a decision up reads that memory (:meth:`StateStore.recall_decision`).

Waiting costs a future on the process's one :class:`~streams.ports.DecisionFeed`, registered
before the request is published; at most ``CREDITLINE_HTTP_MAX_IN_FLIGHT`` wait at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from schemas.models import LoanRequest
from streams.core.answer import request_digest
from streams.core.http_api import (
    Refused,
    Reply,
    busy_reply,
    conflict_reply,
    decision_reply,
    lookup_ids,
    pending_reply,
    read_loan_request,
    timeout_reply,
    unavailable_reply,
    unknown_reply,
)
from streams.errors import CreditlineError
from streams.metrics import Metrics
from streams.ports import DecisionFeed, RecordSink, RememberedDecision, StateStore
from streams.service.shell import decode_limits, utc_now
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: Longest look for an earlier decision before publishing (a conflicting request id is
#: refused at once); without an answer the request is published all the same.
PRECHECK_SECONDS = 1.0
#: Longest Redis read for ``GET /v1/decisions/{request_id}``; then 503.
LOOKUP_SECONDS = 2.0
#: How long a request this worker published is reported pending (202) while no decision is
#: remembered for it; at most :data:`PENDING_PER_SLOT` × the in-flight bound are kept.
PENDING_SECONDS = 300.0
PENDING_PER_SLOT = 10

NOT_READY = (
    "the worker is starting or stopping (the decision topic's tail or the policies are not "
    "ready); nothing was published"
)
NOT_ACKNOWLEDGED = (
    "Kafka did not acknowledge the request within the wait: it may or may not have been "
    "published; sending the same request again is safe (one decision per request_id)"
)
NOT_PUBLISHED = "Kafka refused the request or is unreachable; it was not published"
STORE_UNAVAILABLE = "Redis, where decisions are remembered, did not answer; ask again"
NOT_FOLLOWING = (
    "the decision topic's end could not be read (Kafka unreachable?); nothing was published"
)


class DecisionDesk:
    """``POST /v1/decisions`` and ``GET /v1/decisions/{request_id}``, without HTTP."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        sink: RecordSink,
        feed: DecisionFeed,
        metrics: Metrics,
        *,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sink = sink
        self.feed = feed
        self.metrics = metrics
        self.ready = ready
        self.clock = clock
        self.topic = Topics.from_settings(settings).loan_requests
        self.limits = decode_limits(settings)
        self.wait_seconds = settings.http_decision_wait_seconds
        self.max_in_flight = settings.http_max_in_flight
        self.waiting = 0
        #: (user id, request id) → monotonic instant until which it is reported pending.
        self._pending: OrderedDict[tuple[str, str], float] = OrderedDict()

    # ---- POST ------------------------------------------------------------------------------
    async def submit(self, body: bytes, content_type: str | None) -> Reply:
        """Answer a posted loan request: its decision (200) or why not."""
        outcome, reply = await self._submit(body, content_type)
        self.metrics.http_decisions.labels(outcome).inc()
        return reply

    async def _submit(self, body: bytes, content_type: str | None) -> tuple[str, Reply]:
        try:
            request = read_loan_request(body, content_type, now=self.clock(), limits=self.limits)
        except Refused as refused:
            return "invalid", refused.reply
        if not (self.ready() and self.feed.positioned()):
            return "unavailable", unavailable_reply(NOT_READY, request.request_id)
        if self.waiting >= self.max_in_flight:
            return "busy", busy_reply(self.max_in_flight)
        self.waiting += 1
        self.metrics.http_decisions_waiting.set(self.waiting)
        try:
            return await self._publish_and_wait(request, body)
        finally:
            self.waiting -= 1
            self.metrics.http_decisions_waiting.set(self.waiting)

    async def _publish_and_wait(self, request: LoanRequest, body: bytes) -> tuple[str, Reply]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        if await self._conflicts(request, min(PRECHECK_SECONDS, self.wait_seconds / 4)):
            return "invalid", conflict_reply(request)
        user, request_id = request.user_id, request.request_id
        # Registered before publishing: the decision cannot come before the registration.
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self.feed.expect(user, request_id)
        except Exception as exc:
            log.warning("the decision topic's tail cannot be followed: %s", type(exc).__name__)
            return "unavailable", unavailable_reply(NOT_FOLLOWING, request_id)
        try:
            started = time.perf_counter()
            self._mark_pending(user, request_id)
            try:
                async with asyncio.timeout_at(deadline):
                    await self._publish(request, body)
            except TimeoutError:
                return "unavailable", unavailable_reply(NOT_ACKNOWLEDGED, request_id)
            except Exception as exc:
                log.warning("publishing an HTTP loan request failed: %s", type(exc).__name__)
                self._pending.pop((user, request_id), None)
                return "unavailable", unavailable_reply(NOT_PUBLISHED, request_id)
            try:
                async with asyncio.timeout_at(deadline):
                    payload = await asyncio.shield(answer)
            except TimeoutError:
                if await self._conflicts(request, PRECHECK_SECONDS):
                    self._pending.pop((user, request_id), None)
                    return "invalid", conflict_reply(request)
                return "timeout", timeout_reply(request, self.wait_seconds)
            self.metrics.http_decision_wait.observe(time.perf_counter() - started)
            self._pending.pop((user, request_id), None)
            return "answered", decision_reply(payload)
        finally:
            self.feed.forget(user, request_id, answer)

    async def _publish(self, request: LoanRequest, body: bytes) -> None:
        """Publish the body as it came (validated like the agent will) and wait for the
        broker's acknowledgement; a timeout leaves the delivery itself alone."""
        delivery = await self.sink.send(self.topic, request.user_id.encode(), body)
        await asyncio.shield(_as_future(delivery))

    async def _conflicts(self, request: LoanRequest, within: float) -> bool:
        """True when the request id is remembered answering another request of this user.
        Unknown (Redis away) is no conflict: the decider checks again."""
        remembered = await self._recall(request.user_id, request.request_id, within)
        if isinstance(remembered, RememberedDecision):
            return remembered.request_digest != request_digest(request)
        return False

    async def _recall(
        self, user_id: str, request_id: str, within: float
    ) -> RememberedDecision | Exception | None:
        """The remembered decision, None, or the error that kept it from being read."""
        try:
            async with asyncio.timeout(within):
                return await self.store.recall_decision(user_id, request_id)
        except (TimeoutError, CreditlineError) as exc:
            return exc

    # ---- GET -------------------------------------------------------------------------------
    async def lookup(self, request_id: str, user_id: str | None) -> Reply:
        """The decision remembered for a request (200), pending here (202), unknown (404)."""
        outcome, reply = await self._lookup(request_id, user_id)
        self.metrics.http_lookups.labels(outcome).inc()
        return reply

    async def _lookup(self, request_id: str, user_id: str | None) -> tuple[str, Reply]:
        try:
            request_id, user = lookup_ids(request_id, user_id)
        except Refused as refused:
            return "invalid", refused.reply
        remembered = await self._recall(user, request_id, LOOKUP_SECONDS)
        if isinstance(remembered, Exception):
            log.warning("looking a decision up failed: %s", type(remembered).__name__)
            return "unavailable", unavailable_reply(STORE_UNAVAILABLE, request_id)
        if remembered is not None:
            self._pending.pop((user, request_id), None)
            return "found", decision_reply(remembered.payload)
        if self._is_pending(user, request_id):
            return "pending", pending_reply(request_id, user)
        return "unknown", unknown_reply(request_id)

    # ---- requests published here and not answered yet ---------------------------------------
    def _mark_pending(self, user_id: str, request_id: str) -> None:
        key = (user_id, request_id)
        self._pending[key] = time.monotonic() + PENDING_SECONDS
        self._pending.move_to_end(key)
        while len(self._pending) > self.max_in_flight * PENDING_PER_SLOT:
            self._pending.popitem(last=False)

    def _is_pending(self, user_id: str, request_id: str) -> bool:
        now = time.monotonic()
        while self._pending:  # ordered by expiry: drop the expired ones from the front
            first, until = next(iter(self._pending.items()))
            if until > now:
                break
            del self._pending[first]
        return (user_id, request_id) in self._pending


def _as_future(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """An awaitable as a future that can be shielded (a sink returns one already)."""
    return asyncio.ensure_future(awaitable)
