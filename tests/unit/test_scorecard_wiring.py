"""The scorecard in the decision path: versions over time, the policy topic's records, the
fields a decision carries (version, PD, segment, path back) and the stability gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from schemas.models import EffectiveStatus, InputEvent, LoanDecision, Outcome
from streams.adapters.kafka.policies import (
    SCORECARD_KEY_PREFIX,
    decode_policy_record,
    policy_timeline,
)
from streams.core.answer import answer_in_full
from streams.core.policy import load_default_policy, policy_json
from streams.core.scorecard import (
    ScorecardTimeline,
    load_default_scorecard,
    load_expert_scorecard,
    scorecard_json,
)
from streams.core.timeline import PolicyTimeline, Review, advance, canonical, constant
from streams.metrics import Metrics
from streams.service.stability import EXPORT_EVERY, ScorecardMonitor
from tests.builders import asset, loan_request, repayment

POLICY = load_default_policy()
FITTED = load_default_scorecard()
EXPERT = load_expert_scorecard()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HORIZON = timedelta(days=1826)


def history() -> list[InputEvent]:
    """A year of on-time repayments with verified income and deposit: an open line."""
    events: list[InputEvent] = [
        asset(
            event_id=f"proof-{kind}",
            occurred_at=(NOW - timedelta(days=380)).isoformat(),
            asset_type=kind,
            value="20000.00",
            verified=True,
        )
        for kind in ("income", "deposit")
    ]
    events += [
        repayment(event_id=f"r{i}", occurred_at=(NOW - timedelta(days=30 * i + 5)).isoformat())
        for i in range(12)
    ]
    return canonical(events)


def test_a_card_takes_effect_at_its_instant_and_that_instant_is_a_review() -> None:
    swap = NOW - timedelta(days=10, hours=3)
    timelines = PolicyTimeline(POLICY, cards=ScorecardTimeline.of(FITTED, [(swap, EXPERT)]))
    assert timelines.card_at(swap - timedelta(microseconds=1)) is FITTED
    assert timelines.card_at(swap) is EXPERT
    assert swap in timelines.effective_instants()
    trace: list[Review] = []
    advance(history(), timelines, NOW, HORIZON, trace=trace)
    at_swap = [r for r in trace if r.at == swap]
    assert len(at_swap) == 1 and at_swap[0].scorecard_version == EXPERT.version
    assert {r.scorecard_version for r in trace if r.at < swap} == {FITTED.version}
    assert {r.scorecard_version for r in trace if r.at >= swap} == {EXPERT.version}


def test_a_decision_names_the_card_in_force_at_its_instant_with_its_pd() -> None:
    swap = NOW - timedelta(days=2)
    timelines = PolicyTimeline(POLICY, cards=ScorecardTimeline.of(FITTED, [(swap, EXPERT)]))
    for at, card in ((swap - timedelta(days=1), FITTED), (NOW, EXPERT)):
        request = loan_request(requested_at=at.isoformat(), amount="1000.00")
        checkpoint = advance(history(), timelines, at, HORIZON)
        decision, assessment = answer_in_full(request, checkpoint, timelines, at, at)
        assert assessment is not None
        assert decision.scorecard_version == card.version
        assert decision.score == card.evaluate(assessment.features).score
        assert decision.pd == round(card.pd_of(decision.score), 6)
        assert decision.pd_horizon_months == card.scaling.horizon_months == 12
        assert decision.segment == assessment.segment == "standard"


def test_a_decline_on_a_closed_line_shows_the_way_back() -> None:
    thin: list[InputEvent] = [
        repayment(event_id="r", occurred_at=(NOW - timedelta(days=3)).isoformat())
    ]
    timelines = constant(POLICY)
    checkpoint = advance(canonical(thin), timelines, NOW, HORIZON)
    request = loan_request(requested_at=NOW.isoformat(), displayed_status="open")
    decision, assessment = answer_in_full(request, checkpoint, timelines, NOW, NOW)
    assert assessment is not None
    assert decision.outcome is Outcome.DECLINED
    assert decision.effective_status is EffectiveStatus.CLOSED
    assert decision.path_back is not None
    assert decision.path_back.target_score == assessment.thresholds.reopen_at
    assert decision.path_back.options, "a closed line below the threshold has a way back"
    for option in decision.path_back.options:
        assert option.score >= decision.path_back.target_score > decision.score
        assert set(option.texts) == {"en", "zh"} and option.text == option.texts["en"]
    adverse = [r.code for r in decision.reasons if r.code.startswith("ADVERSE_")]
    assert 1 <= len(adverse) <= 4
    # An approval carries none.
    rich = advance(history(), timelines, NOW, HORIZON)
    approved, _ = answer_in_full(
        loan_request(requested_at=NOW.isoformat(), amount="100.00"), rich, timelines, NOW, NOW
    )
    assert approved.outcome is Outcome.APPROVED and approved.path_back is None
    # The wire form round-trips.
    assert LoanDecision.model_validate_json(decision.model_dump_json()) == decision


def envelope(**document: object) -> bytes:
    return json.dumps(
        {
            **document,
            "applied_at": "2026-11-01T00:00:00+00:00",
            "effective_from": "2026-11-02T00:00:00+00:00",
            "applied_by": "alice",
        }
    ).encode()


def test_the_policy_topic_carries_policies_and_scorecards_side_by_side() -> None:
    expert = json.loads(scorecard_json(EXPERT))
    records = [
        decode_policy_record(
            0, POLICY.version.encode(), envelope(policy=json.loads(policy_json(POLICY)))
        ),
        decode_policy_record(
            1, (SCORECARD_KEY_PREFIX + EXPERT.version).encode(), envelope(scorecard=expert)
        ),
        decode_policy_record(
            2, b"scorecard/broken", envelope(scorecard={**expert, "base_points": "x"})
        ),
        decode_policy_record(3, b"nothing", envelope()),
    ]
    assert [(r.kind, r.valid) for r in records] == [
        ("policy", True),
        ("scorecard", True),
        ("scorecard", False),
        ("policy", False),
    ]
    assert records[1].scorecard == EXPERT and records[1].version == EXPERT.version
    assert records[2].problems and "base_points" in records[2].problems[0]
    timelines = policy_timeline(records, POLICY, FITTED)
    effective = datetime(2026, 11, 2, tzinfo=UTC)
    assert timelines.card_at(effective - timedelta(seconds=1)) == FITTED
    assert timelines.card_at(effective) == EXPERT
    assert timelines.at(effective) == POLICY


def test_stability_gauges_follow_the_card_in_use() -> None:
    metrics = Metrics()
    monitor = ScorecardMonitor(metrics, window=500)
    timelines = constant(POLICY)
    checkpoint = advance(history(), timelines, NOW, HORIZON)
    request = loan_request(requested_at=NOW.isoformat(), amount="100.00")
    decision, assessment = answer_in_full(request, checkpoint, timelines, NOW, NOW)
    for _ in range(EXPORT_EVERY):
        monitor.observe(decision, assessment)
    monitor.export()  # the gauges are recomputed every EXPORT_EVERY observations
    text = generate_latest(metrics.registry).decode()
    assert f'creditline_scorecard_psi{{characteristic="score",version="{FITTED.version}"}}' in text
    assert (
        f'creditline_scorecard_window_scorings{{version="{FITTED.version}"}} {EXPORT_EVERY}.0'
        in text
    )
    assert 'creditline_decision_pd_count{outcome="approved",segment="standard"} 50.0' in text
    # One profile over and over is far from the training mix: a shift to investigate.
    assert monitor._monitor is not None
    report = monitor._monitor.report()
    assert report is not None and report.score_psi > 0.25
    # Another card starts its own window; the old card's series are gone.
    expert = PolicyTimeline(POLICY, cards=ScorecardTimeline(EXPERT))
    decision, assessment = answer_in_full(request, checkpoint, expert, NOW, NOW)
    monitor.observe(decision, assessment)
    text = generate_latest(metrics.registry).decode()
    assert f'version="{FITTED.version}"' not in text.split("creditline_scorecard_psi")[1]
    assert f'creditline_scorecard_window_scorings{{version="{EXPERT.version}"}} 1.0' in text
