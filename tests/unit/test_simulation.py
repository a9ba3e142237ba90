"""The simulated personas decide as documented (the seed cases of the demo)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from schemas.models import Outcome
from streams.core.decision import decide
from streams.core.policy import load_default_policy
from streams.core.scoring import assess
from streams.core.state import reference_fold
from streams.devtools.simulation import (
    Persona,
    loan_requests,
    persona_of,
    population,
    population_events,
    requests_between,
)
from tests.builders import NOW

POLICY = load_default_policy()


def test_population_is_reproducible_from_its_seed() -> None:
    a = [r.value for r in population(12, seed=3, now=NOW)]
    b = [r.value for r in population(12, seed=3, now=NOW)]
    c = [r.value for r in population(12, seed=4, now=NOW)]
    assert a == b
    assert a != c


def test_personas_decide_as_documented() -> None:
    users = 40
    states = reference_fold(population_events(users, seed=11, now=NOW))
    seen: Counter[tuple[Persona, Outcome, bool]] = Counter()
    for request in loan_requests(users, seed=11, now=NOW):
        assessment = assess(states[request.user_id], request.requested_at, POLICY)
        decision = decide(request, assessment, NOW, POLICY)
        index = int(request.user_id.rsplit("-", 1)[1])
        seen[(persona_of(index), decision.outcome, decision.overrides_displayed_status)] += 1
    per = users // len(Persona)
    assert seen[(Persona.STEADY, Outcome.APPROVED, False)] == per
    assert seen[(Persona.RECOVERING, Outcome.APPROVED, True)] == per
    assert seen[(Persona.SLIPPING, Outcome.DECLINED, True)] == per
    assert seen[(Persona.THIN_HIGH_EARNER, Outcome.APPROVED, False)] == per


def test_requests_between_spread_each_users_requests_over_the_window_reproducibly() -> None:
    start, end = NOW - timedelta(days=14), NOW
    asks = requests_between(30, seed=5, start=start, end=end, per_user=2)
    assert asks == requests_between(30, seed=5, start=start, end=end, per_user=2)
    assert asks != requests_between(30, seed=6, start=start, end=end, per_user=2)
    assert len({r.request_id for r in asks}) == 60
    assert Counter(r.user_id for r in asks) == {f"user-{i:06d}": 2 for i in range(30)}
    assert all(start <= r.requested_at < end for r in asks)
    assert [r.requested_at for r in asks] == sorted(r.requested_at for r in asks)
    assert len({r.requested_at.date() for r in asks}) > 7  # spread, not bunched
