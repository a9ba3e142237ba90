"""The scorecard document: validation, scoring, PD, reasons, and the properties that make the
shipped card hard to game (hypothesis)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent
from streams.core.features import SCORE_MAX, SCORE_MIN, Features
from streams.core.labels import features_at
from streams.core.policy import Policy, load_default_policy, parse_policy
from streams.core.scorecard import (
    EXPERT_MISSING_OVERRIDE,
    InvalidScorecard,
    ScorecardDocument,
    ScorecardTimeline,
    expert_from_policy,
    load_default_scorecard,
    load_expert_scorecard,
    merged_edges,
    parse_scorecard,
    scorecard_json,
    scorecard_yaml,
    validate_scorecard,
)
from tests.scorecard_histories import AT, USER, histories, income_event

FITTED = load_default_scorecard()
EXPERT = load_expert_scorecard()


def small_card(**overrides: Any) -> dict[str, Any]:
    """A valid two-characteristic card as a mapping."""
    doc: dict[str, Any] = {
        "version": "test-1",
        "kind": "fitted",
        "scaling": {"pdo": 20, "score": 600, "odds": 50},
        "base_points": 500,
        "characteristics": {
            "dti": {
                "feature": "debt_to_income",
                "measure": "debt / income",
                "direction": "lower_is_better",
                "reason": {"en": "High debt", "zh": "负债高"},
                "bins": [{"below": 0.3, "points": 60}, {"below": 0.6, "points": 30}, {"points": 0}],
                "missing": {"points": 0},
            },
            "assets": {
                "feature": "verified_assets",
                "measure": "verified assets",
                "direction": "higher_is_better",
                "reason": {"en": "Few assets", "zh": "资产少"},
                "bins": [{"below": 10000, "points": 0}, {"points": 40}],
                "missing": {"points": 0},
            },
        },
    }
    doc.update(overrides)
    return doc


def test_the_shipped_cards_parse_and_round_trip() -> None:
    for card in (FITTED, EXPERT):
        assert parse_scorecard(scorecard_yaml(card)) == card
        assert parse_scorecard(scorecard_json(card)) == card
        assert card.training is not None
    assert FITTED.kind == "fitted" and EXPERT.kind == "expert"
    assert EXPERT.version == "expert-2026.11.1"


def test_an_invalid_document_lists_every_problem() -> None:
    doc = small_card(version="bad version!")
    dti = doc["characteristics"]["dti"]
    dti["bins"] = [
        {"below": 0.6, "points": 0},
        {"below": 0.3, "points": 30},
        {"below": 1, "points": 60},
    ]
    dti["missing"] = {"points": 80}
    doc["characteristics"]["assets"]["bins"] = [{"below": 10000, "points": 40}, {"points": 0}]
    doc["characteristics"]["Bad-Name"] = dict(doc["characteristics"]["assets"])
    with pytest.raises(InvalidScorecard) as error:
        validate_scorecard(doc)
    text = "\n".join(error.value.problems)
    for expected in (
        "version",
        "the last bin must have no 'below' bound",
        "'below' bounds must strictly increase",
        "points [0, 30, 60] increase although lower_is_better",
        "withholding information must not pay",
        "characteristics.assets: points [40, 0] decrease although higher_is_better",
        "'Bad-Name' must be snake_case",
        "features scored twice",
    ):
        assert expected in text, expected


def test_missing_may_score_above_the_worst_bin_only_with_a_documented_override() -> None:
    doc = small_card()
    doc["characteristics"]["dti"]["missing"] = {"points": 20}
    with pytest.raises(InvalidScorecard, match="withholding information must not pay"):
        validate_scorecard(doc)
    doc["characteristics"]["dti"]["missing"] = {"points": 20, "override": "short"}
    with pytest.raises(InvalidScorecard):
        validate_scorecard(doc)  # a justification, not a word
    doc["characteristics"]["dti"]["missing"] = {"points": 20, "override": EXPERT_MISSING_OVERRIDE}
    assert validate_scorecard(doc).characteristics["dti"].missing.points == 20


def test_the_fitted_card_never_pays_for_missing_information() -> None:
    for c in FITTED.characteristics.values():
        assert c.missing.override is None
        assert c.missing.points <= c.worst_points
        assert c.direction != "none"


def test_shares_must_add_up_and_be_complete() -> None:
    doc = small_card()
    doc["characteristics"]["assets"]["bins"][0]["share"] = 0.5
    with pytest.raises(InvalidScorecard, match="every bin"):
        validate_scorecard(doc)
    doc["characteristics"]["assets"]["bins"][1]["share"] = 0.2
    doc["characteristics"]["assets"]["missing"]["share"] = 0.0
    with pytest.raises(InvalidScorecard, match=r"add up to 0\.7000"):
        validate_scorecard(doc)


def test_score_points_and_clamp() -> None:
    card = validate_scorecard(small_card())
    assert card.score({"debt_to_income": 0.1, "verified_assets": 20000.0}) == (
        600,
        {"dti": 60, "assets": 40},
    )
    assert card.score({"debt_to_income": None, "verified_assets": 0.0}) == (
        500,
        {"dti": 0, "assets": 0},
    )
    assert card.score({"debt_to_income": 0.3, "verified_assets": 9999.99})[1] == {
        "dti": 30,
        "assets": 0,
    }  # edges are exclusive upper bounds
    low = validate_scorecard(small_card(base_points=-1000))
    high = validate_scorecard(small_card(base_points=5000))
    assert low.score({"debt_to_income": 0.1, "verified_assets": 0.0})[0] == 350
    assert high.score({"debt_to_income": 0.1, "verified_assets": 0.0})[0] == 950


def test_categorical_bins() -> None:
    doc = small_card()
    doc["characteristics"]["assets"] = {
        "feature": "income_verification_level",
        "measure": "0 none, 1 declared, 2 verified",
        "direction": "higher_is_better",
        "reason": {"en": "Income not verified", "zh": "收入未经验证"},
        "bins": [
            {"values": [0], "points": 0},
            {"values": [1], "points": 5},
            {"values": [2], "points": 25},
        ],
        "missing": {"points": 0},
    }
    card = validate_scorecard(doc)
    c = card.characteristics["assets"]
    assert [c.points_of(v) for v in (0, 1, 2, 7, None)] == [0, 5, 25, 0, 0]
    assert "income_verification_level" not in card.feature_edges
    doc["characteristics"]["assets"]["bins"] = [
        {"values": [0, 2], "points": 0},
        {"values": [1, 2], "points": 5},
    ]
    with pytest.raises(InvalidScorecard) as error:
        validate_scorecard(doc)
    assert any("more than one bin" in p for p in error.value.problems)
    assert any("increasing order of values" in p for p in error.value.problems)


@given(st.floats(min_value=350, max_value=950))
def test_pd_falls_as_the_score_rises_and_inverts(score: float) -> None:
    scaling = FITTED.scaling
    assert 0 < scaling.pd_of(score) < 1
    assert scaling.pd_of(score + 1) < scaling.pd_of(score)
    assert math.isclose(scaling.score_of(scaling.pd_of(score)), score, abs_tol=1e-6)


def test_pdo_scaling_definition() -> None:
    card = validate_scorecard(small_card())
    # 600 points at 50:1, 20 points double the odds.
    assert math.isclose(card.pd_of(600), 1 / 51)
    assert math.isclose(card.pd_of(620), 1 / 101)
    assert math.isclose(card.pd_of(580), 1 / 26)
    assert math.isclose(FITTED.pd_of(600), 0.05)


def test_reasons_are_the_largest_shortfalls_in_a_stable_order() -> None:
    card = validate_scorecard(small_card())
    # dti costs 60 (max 60), assets 40: dti first; nothing that costs nothing.
    reasons = card.reasons({"dti": 0, "assets": 0})
    assert [(r.code, r.shortfall) for r in reasons] == [("ADVERSE_DTI", 60), ("ADVERSE_ASSETS", 40)]
    assert reasons[0].text.zh == "负债高"
    assert card.reasons({"dti": 60, "assets": 40}) == []
    # Ties in document order, whatever the order of the points mapping.
    doc = small_card()
    doc["characteristics"]["assets"]["bins"][1]["points"] = 60
    tied = validate_scorecard(doc)
    assert [r.characteristic for r in tied.reasons({"assets": 0, "dti": 0})] == ["dti", "assets"]
    assert len(FITTED.reasons(dict.fromkeys(FITTED.characteristics, 0), top=4)) == 4


def test_feature_edges_name_every_bin_edge() -> None:
    card = validate_scorecard(small_card())
    assert card.feature_edges == {"debt_to_income": (0.3, 0.6), "verified_assets": (10000.0,)}


#: The default policy as shipped while policies carried a hand-set scorecard.
LEGACY_POLICY = parse_policy(
    (Path(__file__).parents[1] / "data/policy-default-2026.11.1.yaml").read_text()
)


def hand_set_score(features: Features, policy: Policy) -> tuple[int, dict[str, int]]:
    """How a legacy policy's own scorecard scored (score = clamp(base + Σ points))."""
    assert policy.scorecard is not None
    values = features.values()
    points = {
        name: attribute.points(values[attribute.feature])
        for name, attribute in policy.scorecard.attributes.items()
    }
    raw = policy.scorecard.base_points + sum(points.values())
    return max(SCORE_MIN, min(SCORE_MAX, raw)), points


@given(histories())
def test_the_expert_document_scores_exactly_as_the_legacy_policy(
    events: list[InputEvent],
) -> None:
    assert LEGACY_POLICY.scorecard is not None
    card = expert_from_policy(LEGACY_POLICY.scorecard, "expert-test")
    features = features_at(events, AT)
    assert features is not None
    assert card.score(features) == hand_set_score(features, LEGACY_POLICY)
    assert EXPERT.score(features) == hand_set_score(features, LEGACY_POLICY)


# ---- anti-gaming and monotonicity of the shipped card ----------------------------------------
def score(card: ScorecardDocument, events: list[InputEvent]) -> int:
    features = features_at(events, AT)
    assert features is not None
    return card.evaluate(features).score


@given(
    histories(),
    st.sampled_from((AssetType.DEPOSIT, AssetType.INVESTMENT, AssetType.PROPERTY)),
    st.integers(1, 3_000_000),
    st.floats(min_value=0, max_value=900),
)
def test_adding_a_verified_asset_never_lowers_the_score(
    events: list[InputEvent], kind: AssetType, value: int, ago: float
) -> None:
    assume(all(not (isinstance(e, AssetEvent) and e.asset_type is kind) for e in events))
    proof = AssetEvent(
        event_id="a-new",
        user_id=USER,
        occurred_at=AT - timedelta(days=ago),
        asset_type=kind,
        value=Decimal(value),
        verified=True,
    )
    assert score(FITTED, [*events, proof]) >= score(FITTED, events)


@given(histories(), st.data())
def test_verifying_a_declared_asset_never_lowers_the_score(
    events: list[InputEvent], data: st.DataObject
) -> None:
    declared = [e for e in events if isinstance(e, AssetEvent) and not e.verified]
    assume(declared and declared[0].asset_type is not AssetType.INCOME)
    latest = max(
        (e for e in events if isinstance(e, AssetEvent) and e.asset_type is declared[0].asset_type),
        key=lambda e: (e.occurred_at, e.event_id),
    )
    assume(not latest.verified)
    proof = latest.model_copy(update={"event_id": "zz-verified", "verified": True})
    assert score(FITTED, [*events, proof]) >= score(FITTED, events)


@given(histories(), st.data())
def test_curing_days_past_due_never_lowers_the_score(
    events: list[InputEvent], data: st.DataObject
) -> None:
    late = [i for i, e in enumerate(events) if isinstance(e, RepaymentEvent) and e.days_past_due]
    assume(late)
    index = data.draw(st.sampled_from(late))
    event = events[index]
    assert isinstance(event, RepaymentEvent)
    cured_days = data.draw(st.integers(0, event.days_past_due - 1))
    cured = [*events]
    cured[index] = event.model_copy(update={"days_past_due": cured_days})
    assert score(FITTED, cured) >= score(FITTED, events)


@given(
    histories(with_income=False),
    st.integers(1, 500_000),
    st.floats(min_value=0, max_value=900),
)
def test_declaring_a_verified_income_never_lowers_the_score(
    events: list[InputEvent], income: int, ago: float
) -> None:
    with_income = [*events, income_event(Decimal(income), True, ago)]
    assert score(FITTED, with_income) >= score(FITTED, events)


@given(histories(with_income=False), st.data())
def test_an_on_time_repayment_never_lowers_the_score(
    events: list[InputEvent], data: st.DataObject
) -> None:
    loans = {}
    for e in sorted(
        (e for e in events if isinstance(e, RepaymentEvent)),
        key=lambda e: (e.occurred_at, e.event_id),
    ):
        loans[e.loan_id] = e
    assume(loans)
    latest = loans[data.draw(st.sampled_from(sorted(loans)))]
    on_time = latest.model_copy(
        update={
            "event_id": "zz-on-time",
            "occurred_at": AT - timedelta(days=data.draw(st.floats(0, 900))),
            "amount_paid": latest.amount_due,
            "days_past_due": 0,
        }
    )
    assume(on_time.occurred_at >= latest.occurred_at)  # its balance is the latest: debt unchanged
    assert score(FITTED, [*events, on_time]) >= score(FITTED, events)


def test_withholding_income_paid_under_the_expert_card_and_no_longer_does() -> None:
    """The issue in one user: high debt, a small verified income. Under the hand-set card
    withholding the income scores higher; under the fitted card it never does."""
    debt = RepaymentEvent(
        event_id="r-1",
        user_id=USER,
        occurred_at=AT - timedelta(days=20),
        loan_id="loan-1",
        amount_due=Decimal(1000),
        amount_paid=Decimal(1000),
        days_past_due=0,
        outstanding_balance=Decimal(90000),
    )
    income = income_event(Decimal(3000), True, 10)  # debt-to-income 2.5
    assert score(EXPERT, [debt]) > score(EXPERT, [debt, income])
    assert score(FITTED, [debt]) <= score(FITTED, [debt, income])


@given(st.data())
def test_points_follow_every_declared_direction(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(FITTED.characteristics)))
    c = FITTED.characteristics[name]
    a, b = sorted(data.draw(st.lists(st.floats(0, 2_000_000), min_size=2, max_size=2)))
    if c.direction == "higher_is_better":
        assert c.points_of(a) <= c.points_of(b)
    else:
        assert c.direction == "lower_is_better"
        assert c.points_of(a) >= c.points_of(b)
    assert c.points_of(None) <= min(c.points_of(a), c.points_of(b))


def test_expert_conversion_keeps_the_legacy_override_only_where_it_matters() -> None:
    overridden = [n for n, c in EXPERT.characteristics.items() if c.missing.override]
    assert overridden == ["debt_to_income"]
    assert EXPERT.characteristics["debt_to_income"].missing.points == -20


@given(st.data())
def test_reasons_are_made_once_each_so_a_worker_keeps_no_more_than_the_card_has(
    data: st.DataObject,
) -> None:
    # Any combination of the card's bins, as a worker meets them user after user.
    points = {
        name: data.draw(st.sampled_from([b.points for b in c.bins] + [c.missing.points]))
        for name, c in FITTED.characteristics.items()
    }
    reasons = FITTED.reasons(points)
    # The same answer as a fresh computation, made of the same objects as before.
    shortfalls = sorted(
        (c.max_points - points[name], i, name)
        for i, (name, c) in enumerate(FITTED.characteristics.items())
    )
    assert [(r.characteristic, r.shortfall) for r in reasons] == [
        (name, gap) for gap, _, name in sorted(shortfalls, key=lambda x: (-x[0], x[1]))[:4] if gap
    ]
    assert all(a is b for a, b in zip(reasons, FITTED.reasons(dict(points)), strict=True))
    # What the card keeps is bounded by its bins, not by the combinations it met.
    possible = sum(len(c.bins) + 1 for c in FITTED.characteristics.values())
    assert len(FITTED._reasons_made) <= possible


def test_reasons_travel_as_decision_reasons() -> None:
    reason = FITTED.reasons(dict.fromkeys(FITTED.characteristics, 0), top=1)[0]
    wire = reason.as_reason("zh")
    assert wire.code == reason.code and wire.text == reason.text.zh
    assert wire.texts == {"en": reason.text.en, "zh": reason.text.zh}


def test_cards_over_time_and_merged_review_edges() -> None:
    later = EXPERT.model_copy(update={"version": "expert-later"})
    timeline = ScorecardTimeline.of(FITTED, [(AT, later), (AT - timedelta(days=10), EXPERT)])
    assert timeline.at(AT - timedelta(days=11)) is FITTED
    assert timeline.at(AT - timedelta(days=10)) is EXPERT
    assert timeline.at(AT) is later
    assert timeline.next_change_after(AT - timedelta(days=10)) == AT
    assert timeline.next_change_after(AT) is None
    policy = load_default_policy()
    edges = merged_edges(policy.feature_edges, FITTED.feature_edges)
    for feature, values in FITTED.feature_edges.items():
        assert set(values) <= set(edges[feature])
    assert set(policy.feature_edges["history_months"]) <= set(edges["history_months"])
