"""The HTTP decision API's own bodies: what a worker answers besides a :class:`LoanDecision`.

A request's body is a :class:`~schemas.models.LoanRequest` as on the wire and a decision is
returned byte for byte as published; everything else — refusals, a wait that ran out, a
decision not yet made — is a problem document (RFC 9457, ``application/problem+json``) or a
:class:`DecisionPending`. The OpenAPI document (``schemas/openapi.yaml``) is generated from
these models and the contract's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import EventId

#: The API's paths (``{request_id}`` is a path parameter).
DECISIONS_PATH = "/v1/decisions"
DECISION_PATH = "/v1/decisions/{request_id}"
PROBLEM_CONTENT_TYPE = "application/problem+json"
JSON_CONTENT_TYPE = "application/json"
#: Every problem's ``type`` is this followed by its slug (``urn:creditline:problem:timeout``).
PROBLEM_TYPE_PREFIX = "urn:creditline:problem:"


class FieldProblem(BaseModel):
    """One fault of a request, as the worker's decoder names it."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(
        description="The field at fault (a dotted path: `amount`, `user_id`); empty for the "
        "body as a whole (not JSON, not an object, too large)."
    )
    code: str = Field(
        description="The dead-letter code the worker would give the same record on the "
        "request topic (`MISSING_FIELD`, `AMOUNT_OUT_OF_RANGE`, `NOT_JSON`…; docs/contract.md)."
    )
    message: str = Field(description="What is wrong, naming the field; never its value.")


class Problem(BaseModel):
    """Why a request was not answered with a decision (RFC 9457 problem details)."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(
        description="`urn:creditline:problem:<slug>`, stable: `invalid-request`, "
        "`unsupported-media-type`, `body-too-large`, `conflicting-request-id`, `busy`, "
        "`unavailable`, `timeout`, `unknown-decision`, `internal-error`."
    )
    title: str = Field(description="A short summary of the problem type.")
    status: int = Field(description="The HTTP status code of the response.")
    detail: str = Field(description="This occurrence, for people (never a personal value).")
    request_id: EventId | None = Field(
        default=None, description="The request concerned, when it is known."
    )
    poll: str | None = Field(
        default=None,
        description="Where to ask for the decision later: `GET /v1/decisions/{request_id}"
        "?user_id={user_id}` (a path on the same server).",
    )
    retry_after_seconds: float | None = Field(
        default=None, description="When to try again (also in the Retry-After header)."
    )
    errors: list[FieldProblem] = Field(
        default_factory=list, description="Each fault of the request, one by one (422, 413)."
    )


class DecisionPending(BaseModel):
    """A request this worker accepted whose decision is not remembered yet (202)."""

    model_config = ConfigDict(frozen=True)

    request_id: EventId
    status: Literal["pending"] = "pending"
    poll: str = Field(description="This URL again: ask later (see Retry-After).")
    retry_after_seconds: float = Field(description="When to ask again.")
