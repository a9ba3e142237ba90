"""The HTTP decision API on the worker's web port (Faust's aiohttp server, beside
``/metrics`` and ``/healthz``), in the roles that answer loan requests (``all``,
``decisions``): ``POST /v1/decisions`` and ``GET /v1/decisions/{request_id}``.

HTTP only: a body is read (at most ``CREDITLINE_MAX_RECORD_BYTES`` + 1 bytes) and handed to
:class:`~streams.service.http_decisions.DecisionDesk`, whose reply is written back as it is.
The desk waits on the process's one tail of the decision topic
(:class:`~streams.adapters.kafka.decision_feed.DecisionTail`), run here as a Faust task.
See docs/http-api.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.web.views import View

from schemas.http import DECISION_PATH, DECISIONS_PATH
from streams.adapters.kafka.decision_feed import DecisionTail
from streams.core.http_api import Reply, internal_error_reply, unavailable_reply
from streams.runtime.bootstrap import Components
from streams.service.http_decisions import NOT_READY, DecisionDesk

log = logging.getLogger(__name__)

#: Pause before starting the decision topic's tail again after it failed to start.
RESTART_SECONDS = 1.0


async def read_bounded(request: Any, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer (refused as too large
    without reading the rest)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def respond(view: Any, reply: Reply) -> Any:
    """A reply as the web driver's response, body unchanged."""
    return view.bytes(
        reply.body,
        content_type=reply.content_type,
        status=reply.status,
        headers=dict(reply.headers),
    )


class DecisionApi:
    """The API's routes and the task that tails the decision topic for them."""

    def __init__(self, app: faust.App, parts: Components, ready: Callable[[], bool]) -> None:
        self.app = app
        self.parts = parts
        self.settings = parts.settings
        self.ready = ready
        self.feed = DecisionTail(self.settings, parts.topics.loan_decisions)
        #: Made by :meth:`serve` (it needs the running loop); until then every POST is 503.
        self.desk: DecisionDesk | None = None

    async def serve(self) -> None:
        """Tail the decision topic for the waiting requests until the worker stops."""
        store = self.parts.store()
        self.desk = DecisionDesk(
            self.settings, store, self.parts.sink, self.feed, self.parts.metrics, ready=self.ready
        )
        try:
            while not self.app.should_stop:
                try:
                    await self.feed.start()
                except Exception as exc:
                    log.warning("the decision API cannot tail the decision topic yet: %s", exc)
                    await self.feed.stop()
                    await asyncio.sleep(RESTART_SECONDS)
                    continue
                await self.parts.policies.ready.wait()
                log.info(
                    "decision API ready: POST http://%s:%d%s",
                    self.settings.web_host,
                    self.settings.web_port,
                    DECISIONS_PATH,
                )
                await self.feed.run(lambda: bool(self.app.should_stop))
        finally:
            await self.feed.stop()
            await store.close()

    async def post(self, view: Any, request: Any) -> Any:
        """``POST /v1/decisions``."""
        desk = self.desk
        if desk is None:
            return respond(view, unavailable_reply(NOT_READY))
        try:
            body = await read_bounded(request, self.settings.max_record_bytes)
            reply = await desk.submit(body, request.headers.get("Content-Type"))
        except Exception:
            log.exception("answering POST %s failed", DECISIONS_PATH)
            reply = internal_error_reply()
        return respond(view, reply)

    async def get(self, view: Any, request: Any, request_id: str) -> Any:
        """``GET /v1/decisions/{request_id}?user_id=…``."""
        desk = self.desk
        if desk is None:
            return respond(view, unavailable_reply(NOT_READY))
        try:
            reply = await desk.lookup(request_id, request.query.get("user_id"))
        except Exception:
            log.exception("answering GET %s failed", DECISION_PATH)
            reply = internal_error_reply()
        return respond(view, reply)

    def register(self) -> None:
        """Put the routes and the tail's task on the app."""
        api = self

        # Faust makes a page a View class whose methods get (view, request, **match_info).
        async def post(view: Any, request: Any) -> Any:
            return await api.post(view, request)

        async def get(view: Any, request: Any, request_id: str) -> Any:
            return await api.get(view, request, request_id)

        self.app.page(DECISIONS_PATH, name="decisions")(
            type("decisions", (View,), {"post": post, "__module__": __name__})
        )
        self.app.page(DECISION_PATH, name="decision")(
            type("decision", (View,), {"get": get, "__module__": __name__})
        )
        self.app.task(self.serve)
