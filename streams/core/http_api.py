"""The HTTP decision API's pure half: a request body → a :class:`LoanRequest` by the worker's
own decoding (:func:`streams.core.decoding.decode_value`, so a body is refused exactly when
the same record on the request topic would be dead-lettered), and every answer that is not a
decision as a status code and a problem document (:mod:`schemas.http`).

No I/O: the service (:mod:`streams.service.http_decisions`) publishes and waits, the runtime
(:mod:`streams.runtime.http_api`) speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from schemas.http import (
    DECISIONS_PATH,
    JSON_CONTENT_TYPE,
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_PREFIX,
    DecisionPending,
    FieldProblem,
    Problem,
)
from schemas.models import EventId, LoanRequest, UserId
from streams.core.decoding import (
    DecodeLimits,
    RecordKind,
    RejectCode,
    RejectedRecord,
    decode_value,
)

#: How soon a client is told to ask again (Retry-After) when a decision is not there yet or
#: the worker cannot take the request now.
RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, independent of the web framework."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


class Refused(Exception):
    """A request answered with ``reply`` instead of being published."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def poll_path(request_id: str, user_id: str) -> str:
    """Where the decision of a request can be asked for (a path on the same server).

    Decisions are remembered per user (the key shares the user's Redis Cluster slot), so
    the user id is part of the address.
    """
    return f"{DECISIONS_PATH}/{quote(request_id, safe='')}?user_id={quote(user_id, safe='')}"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    request_id: str | None = None,
    poll: str | None = None,
    retry_after: float | None = None,
    errors: Sequence[FieldProblem] = (),
) -> Reply:
    """A problem document (RFC 9457) as a reply; ``retry_after`` also as the header."""
    document = Problem(
        type=PROBLEM_TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=detail,
        request_id=request_id,
        poll=poll,
        retry_after_seconds=retry_after,
        errors=list(errors),
    )
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("Retry-After", str(max(1, round(retry_after)))))
    if poll is not None:
        headers.append(("Location", poll))
    return Reply(
        status,
        document.model_dump_json(exclude_defaults=True).encode(),
        PROBLEM_CONTENT_TYPE,
        tuple(headers),
    )


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with no charset or UTF-8 (JSON is UTF-8: RFC 8259)."""
    if not content_type:
        return False
    media, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _field_problems(rejected: RejectedRecord) -> list[FieldProblem]:
    return [
        FieldProblem(field=p.field, code=p.code.value, message=p.message) for p in rejected.problems
    ]


def _summary(errors: Sequence[FieldProblem]) -> str:
    """One clear message per problem, like the command line's (``amount: …; user_id: …``)."""
    return "; ".join(f"{e.field or 'body'}: {e.message}" for e in errors)


def read_loan_request(
    body: bytes, content_type: str | None, *, now: datetime, limits: DecodeLimits
) -> LoanRequest:
    """The loan request in an HTTP body, or :class:`Refused` with 415, 413 or 422.

    ``body`` may have been cut at ``limits.max_record_bytes + 1`` bytes by the reader: a
    longer one is refused whatever follows.
    """
    if not _is_json(content_type):
        raise Refused(
            problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "the body must be a JSON loan request with Content-Type: application/json",
            )
        )
    if len(body) > limits.max_record_bytes:
        error = FieldProblem(
            field="",
            code=RejectCode.OVERSIZED.value,
            message=f"the body has more than {limits.max_record_bytes} bytes "
            "(CREDITLINE_MAX_RECORD_BYTES)",
        )
        raise Refused(
            problem(413, "body-too-large", "Body too large", _summary([error]), errors=[error])
        )
    try:
        request = decode_value(RecordKind.LOAN_REQUEST, body, now=now, limits=limits)
    except RejectedRecord as rejected:
        errors = _field_problems(rejected)
        raise Refused(
            problem(
                422,
                "invalid-request",
                "Invalid loan request",
                _summary(errors),
                errors=errors,
            )
        ) from None
    assert isinstance(request, LoanRequest)
    return request


_REQUEST_ID = TypeAdapter(EventId)
_USER_ID = TypeAdapter(UserId)


def lookup_ids(request_id: str, user_id: str | None) -> tuple[str, str]:
    """The path's request id and the query's user id, checked as the contract types them,
    or :class:`Refused` with 422 naming each one at fault."""
    errors: list[FieldProblem] = []
    for field, value, adapter in (
        ("request_id", request_id, _REQUEST_ID),
        ("user_id", user_id, _USER_ID),
    ):
        if value is None:
            code, message = RejectCode.MISSING_FIELD, "Field required (a query parameter)"
            errors.append(FieldProblem(field=field, code=code.value, message=message))
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            message = str(exc.errors(include_url=False)[0]["msg"])
            errors.append(
                FieldProblem(field=field, code=RejectCode.INVALID_ID.value, message=message)
            )
    if errors:
        raise Refused(
            problem(422, "invalid-request", "Invalid lookup", _summary(errors), errors=errors)
        )
    assert user_id is not None
    return request_id, user_id


def decision_reply(payload: bytes) -> Reply:
    """200 with the decision exactly as published."""
    return Reply(200, payload)


def pending_reply(request_id: str, user_id: str) -> Reply:
    """202: accepted by this worker, no decision remembered yet."""
    poll = poll_path(request_id, user_id)
    document = DecisionPending(
        request_id=request_id, poll=poll, retry_after_seconds=RETRY_AFTER_SECONDS
    )
    headers = (("Retry-After", str(round(RETRY_AFTER_SECONDS))), ("Location", poll))
    return Reply(202, document.model_dump_json().encode(), JSON_CONTENT_TYPE, headers)


def unknown_reply(request_id: str) -> Reply:
    """404: no decision remembered for this request (and user), none awaited here."""
    return problem(
        404,
        "unknown-decision",
        "No such decision",
        "no decision is remembered for this request_id and user_id: never requested, not "
        "decided yet by another worker, or older than CREDITLINE_DECISION_RETENTION_DAYS",
        request_id=request_id,
    )


def timeout_reply(request: LoanRequest, wait_seconds: float) -> Reply:
    """504: published, but no decision within the wait; where to poll for it."""
    return problem(
        504,
        "timeout",
        "No decision within the wait",
        f"the request was published but its decision did not arrive within "
        f"{wait_seconds:g} s; ask for it at `poll` (the same POST again is safe too: one "
        "decision per request_id)",
        request_id=request.request_id,
        poll=poll_path(request.request_id, request.user_id),
        retry_after=RETRY_AFTER_SECONDS,
    )


def conflict_reply(request: LoanRequest) -> Reply:
    """409: the request id already answers another request of this user."""
    return problem(
        409,
        "conflicting-request-id",
        "request_id already used",
        "this request_id was already decided for a request with other content; a request "
        "needs a request_id of its own (on the request topic it would be dead-lettered "
        "CONFLICTING_REQUEST_ID)",
        request_id=request.request_id,
        poll=poll_path(request.request_id, request.user_id),
    )


def busy_reply(limit: int) -> Reply:
    """429: as many requests are waiting as a worker takes (CREDITLINE_HTTP_MAX_IN_FLIGHT)."""
    return problem(
        429,
        "busy",
        "Too many requests waiting",
        f"{limit} requests are waiting for their decisions in this worker "
        "(CREDITLINE_HTTP_MAX_IN_FLIGHT); nothing was published",
        retry_after=RETRY_AFTER_SECONDS,
    )


def unavailable_reply(detail: str, request_id: str | None = None) -> Reply:
    """503: the worker cannot take requests now (starting, stopping, Kafka or Redis away)."""
    return problem(
        503,
        "unavailable",
        "Service unavailable",
        detail,
        request_id=request_id,
        retry_after=RETRY_AFTER_SECONDS,
    )


def internal_error_reply() -> Reply:
    """500: a bug; logged with its traceback by the runtime."""
    return problem(
        500, "internal-error", "Internal error", "the worker failed to answer; see its log"
    )
