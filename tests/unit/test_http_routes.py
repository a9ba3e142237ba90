"""Which workers serve the HTTP decision API: those that answer loan requests."""

from __future__ import annotations

from typing import Any

import pytest

from streams.metrics import Metrics
from streams.runtime.app import build_app
from streams.settings import Settings


@pytest.mark.parametrize(("role", "api"), [("all", True), ("decisions", True), ("events", False)])
def test_the_roles_that_answer_loan_requests_serve_the_api(role: str, api: bool) -> None:
    app = build_app(
        Settings.model_construct(**{**Settings().model_dump(), "worker_role": role}), Metrics()
    )
    web: Any = app.web  # Faust's aiohttp driver
    paths = {route.resource.canonical for route in web.web_app.router.routes()}
    expected = {"/metrics", "/healthz"} | (
        {"/v1/decisions", "/v1/decisions/{request_id}"} if api else set()
    )
    assert paths == expected
