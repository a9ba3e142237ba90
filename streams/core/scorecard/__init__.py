"""The scorecard as a versioned document: characteristics, bins, points, scaling to a
probability of default, reason texts and the training distribution monitoring compares with.

Pure, validated by pydantic, immutable, like :mod:`streams.core.policy`.
:func:`parse_scorecard` either returns a complete, consistent :class:`ScorecardDocument` or
raises :class:`InvalidScorecard` naming every problem. The rules a document must keep:

* every characteristic scores one :data:`~streams.core.policy.FeatureName` feature; its bins
  cover the whole line (numeric ``below`` edges strictly increasing, the last bin open) or are
  disjoint categories, and it has an explicit ``missing`` bin for an unknown value (or a value
  in no category);
* **withholding never pays**: the missing bin scores no more than the worst bin, unless an
  explicit ``missing.override`` documents why (the expert card's legacy debt-to-income);
* a declared ``direction`` (``higher_is_better`` / ``lower_is_better``) is kept by the points:
  more of a good thing never scores less;
* scaling: score = offset + factor · ln(odds), factor = PDO / ln 2,
  offset = S0 − factor · ln O0 (odds good:bad), so ``pd = 1 / (1 + odds)`` over
  ``scaling.horizon_months``.

score = clamp(``base_points`` + Σ points, 350, 950).
"""

from streams.core.scorecard.checks import characteristic_problems
from streams.core.scorecard.document import (
    AdverseReason,
    Characteristic,
    Direction,
    InvalidScorecard,
    Kind,
    MissingBin,
    Scaling,
    ScoreBand,
    ScoreBin,
    ScorecardDocument,
    Scored,
    Training,
    Values,
)
from streams.core.scorecard.expert import (
    BUSINESS_DIRECTIONS,
    EXPERT_MISSING_OVERRIDE,
    NOMINAL_SCALING,
    NULLABLE_FEATURES,
    expert_from_policy,
)
from streams.core.scorecard.parsing import (
    load_default_scorecard,
    load_expert_scorecard,
    load_scorecard,
    parse_scorecard,
    scorecard_json,
    scorecard_yaml,
    validate_scorecard,
)
from streams.core.scorecard.timeline import (
    ScorecardTimeline,
    merged_edges,
)

__all__ = [
    "BUSINESS_DIRECTIONS",
    "EXPERT_MISSING_OVERRIDE",
    "NOMINAL_SCALING",
    "NULLABLE_FEATURES",
    "AdverseReason",
    "Characteristic",
    "Direction",
    "InvalidScorecard",
    "Kind",
    "MissingBin",
    "Scaling",
    "ScoreBand",
    "ScoreBin",
    "ScorecardDocument",
    "ScorecardTimeline",
    "Scored",
    "Training",
    "Values",
    "characteristic_problems",
    "expert_from_policy",
    "load_default_scorecard",
    "load_expert_scorecard",
    "load_scorecard",
    "merged_edges",
    "parse_scorecard",
    "scorecard_json",
    "scorecard_yaml",
    "validate_scorecard",
]
