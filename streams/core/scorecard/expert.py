"""The hand-set scorecard of a policy as a document (the expert card, the baseline a fitted
card is compared with)."""

from __future__ import annotations

from typing import Any

from streams.core.scorecard.document import Direction, Scaling, ScorecardDocument
from streams.core.scorecard.parsing import validate_scorecard

#: Features that can be unknown (``Features.values()`` gives None): only these ever use a
#: missing bin.
NULLABLE_FEATURES = frozenset({"monthly_income", "debt_to_income"})
#: The business direction of each feature where one is known: more days past due never
#: raises a score; more verified assets, on-time repayments or verified income never lower it.
BUSINESS_DIRECTIONS: dict[str, Direction] = {
    "on_time_repayments": "higher_is_better",
    "late_repayments": "lower_is_better",
    "missed_repayments": "lower_is_better",
    "worst_days_past_due_12m": "lower_is_better",
    "debt_to_income": "lower_is_better",
    "verified_assets": "higher_is_better",
    "verified_monthly_income": "higher_is_better",
    "income_verification_level": "higher_is_better",
    "history_months": "higher_is_better",
}
#: Nominal scaling of a card not (yet) calibrated to outcomes: 600 at 19:1 (5 % PD), 40 PDO.
NOMINAL_SCALING = Scaling(pdo=40, score=600, odds=19, calibrated=False)
EXPERT_MISSING_OVERRIDE = (
    "Legacy hand-set value of the expert card, kept unchanged so that it can be compared: an "
    "unknown debt-to-income scores above a known high one, so withholding income pays. "
    "Superseded by the fitted card, whose missing bins never score above their worst bin."
)


def expert_from_policy(
    policy_card: Any, version: str, scaling: Scaling = NOMINAL_SCALING, description: str = ""
) -> ScorecardDocument:
    """The hand-set scorecard of a policy (``Policy.scorecard``) as a document with the same
    scores: same base, bins and points. A missing bin that can never be used (the feature is
    never unknown) is set to the worst bin; one that can and scores above the worst bin keeps
    its points with :data:`EXPERT_MISSING_OVERRIDE`. Directions are the business ones where
    the points keep them."""
    characteristics: dict[str, Any] = {}
    for name, attribute in policy_card.attributes.items():
        bins = [{"below": b.below, "points": b.points} for b in attribute.bins]
        points = [b.points for b in attribute.bins]
        missing: dict[str, Any] = {"points": min(points)}
        if attribute.feature in NULLABLE_FEATURES:
            missing = {"points": attribute.missing_points}
            if attribute.missing_points > min(points):
                missing["override"] = EXPERT_MISSING_OVERRIDE
        direction = BUSINESS_DIRECTIONS.get(attribute.feature, "none")
        if direction == "higher_is_better" and points != sorted(points):
            direction = "none"
        if direction == "lower_is_better" and points != sorted(points, reverse=True):
            direction = "none"
        characteristics[name] = {
            "feature": attribute.feature,
            "measure": attribute.measure,
            "direction": direction,
            "reason": attribute.adverse.model_dump(),
            "bins": [{k: v for k, v in b.items() if v is not None} for b in bins],
            "missing": missing,
        }
    return validate_scorecard(
        {
            "version": version,
            "kind": "expert",
            "description": description,
            "scaling": scaling.model_dump(),
            "base_points": policy_card.base_points,
            "characteristics": characteristics,
        }
    )
