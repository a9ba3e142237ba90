"""The scorecard document: characteristics, bins, points, scaling to a probability of
default, reason texts and the training distribution; its validation rules are listed in
:mod:`streams.core.scorecard`."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.models import Reason
from streams.core.features import SCORE_MAX, SCORE_MIN, Features
from streams.core.policy import FeatureName, Text
from streams.core.reasons import Language, make_reason
from streams.core.scorecard.checks import SHARE_TOLERANCE, characteristic_problems, name_problems

Direction = Literal["higher_is_better", "lower_is_better", "none"]
Kind = Literal["fitted", "expert"]
Values = Mapping[str, float | None]


class InvalidScorecard(ValueError):
    """A scorecard document that cannot be used; ``problems`` lists why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid scorecard:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Strict(BaseModel):
    # Unknown keys are mistakes (a typo would silently change nothing).
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreBin(_Strict):
    """Numeric: values below ``below`` (exclusive; omitted on the last bin). Categorical:
    the values listed in ``values``. ``share``: the training population's share in it."""

    below: float | None = None
    values: list[float] | None = Field(None, min_length=1)
    points: int
    share: float | None = Field(None, ge=0, le=1)


class MissingBin(_Strict):
    """Points for an unknown value. ``override`` documents why it may score above the worst
    bin (without one it may not: withholding information must not pay)."""

    points: int
    share: float | None = Field(None, ge=0, le=1)
    override: str | None = Field(None, min_length=10)


#: How a value finds its bin: numeric ``below`` edges, or category value → bin index.
_BinLookup = tuple[float, ...] | dict[float, int]
#: (feature, lookup, points per bin, points of the missing bin).
_ScoreRow = tuple[str, _BinLookup, tuple[int, ...], int]


def _bin_index(lookup: _BinLookup, value: float | None) -> int | None:
    """The bin of ``value`` (None: the missing bin). The one place binning is defined."""
    if value is None or math.isnan(value):
        return None
    if isinstance(lookup, dict):
        return lookup.get(float(value))
    return bisect.bisect_right(lookup, value)


class Characteristic(_Strict):
    """One characteristic: a feature, its bins and points, and the reason text used when it
    costs the applicant points."""

    feature: FeatureName
    measure: str = Field(min_length=1)
    direction: Direction = "none"
    reason: Text
    bins: list[ScoreBin] = Field(min_length=1)
    missing: MissingBin

    @model_validator(mode="after")
    def _consistent(self) -> Characteristic:
        problems = characteristic_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def categorical(self) -> bool:
        """Whether the bins are categories rather than numeric intervals."""
        return self.bins[0].values is not None

    @cached_property
    def edges(self) -> tuple[float, ...]:
        """The numeric ``below`` edges (empty for categories)."""
        return tuple(b.below for b in self.bins if b.below is not None)

    @cached_property
    def _category_index(self) -> dict[float, int]:
        return {v: i for i, b in enumerate(self.bins) for v in b.values or ()}

    def bin_of(self, value: float | None) -> int | None:
        """Index of the bin ``value`` falls in; None for the missing bin (an unknown value,
        not a number, or a value in no category)."""
        return _bin_index(self._lookup, value)

    @cached_property
    def _lookup(self) -> _BinLookup:
        return self._category_index if self.categorical else self.edges

    def points_of(self, value: float | None) -> int:
        """Points for a feature value."""
        index = self.bin_of(value)
        return self.missing.points if index is None else self.bins[index].points

    @cached_property
    def max_points(self) -> int:
        """The best this characteristic can give; shortfalls from it are adverse reasons
        (asked for every status change and decline: computed once)."""
        return max([b.points for b in self.bins] + [self.missing.points])

    @property
    def worst_points(self) -> int:
        """The worst bin's points (what the missing bin may score at most)."""
        return min(b.points for b in self.bins)


class Scaling(_Strict):
    """Points to double the odds (``pdo``) and a reference: score ``score`` at good:bad odds
    ``odds``. Defines score ↔ probability of default over ``horizon_months``."""

    pdo: float = Field(gt=0)
    score: float = Field(ge=SCORE_MIN, le=SCORE_MAX)
    odds: float = Field(gt=0)
    horizon_months: int = Field(12, ge=1, le=60)
    bad_definition: str = "90+ days past due within 12 months"
    calibrated: bool = Field(
        True, description="False when the mapping is nominal (not fitted to outcomes)."
    )

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: PDO / ln 2."""
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        """The score at odds 1:1: S0 − factor · ln O0."""
        return self.score - self.factor * math.log(self.odds)

    def pd_of(self, score: float) -> float:
        """Probability of default of a score: 1 / (1 + odds), odds = e^((score−offset)/factor)."""
        exponent = (score - self.offset) / self.factor
        if exponent > 700:  # exp overflows; the PD is 0 to double precision anyway
            return 0.0
        return 1.0 / (1.0 + math.exp(exponent))

    def score_of(self, pd: float) -> float:
        """The (unclamped) score at which the probability of default is ``pd`` (0 < pd < 1)."""
        if not 0 < pd < 1:
            raise ValueError("pd must be strictly between 0 and 1")
        return self.offset + self.factor * math.log((1 - pd) / pd)


class ScoreBand(_Strict):
    """A score band of the training distribution: scores below ``below`` (the last band
    open), and the share of training rows in it."""

    below: float | None = None
    share: float = Field(ge=0, le=1)


class Training(_Strict):
    """What the card was fitted (or calibrated) on: the reference for stability (PSI)."""

    data: str = Field(min_length=1)
    rows: int = Field(ge=1)
    bad_rate: float = Field(ge=0, le=1)
    score_bands: list[ScoreBand] = Field(min_length=2)

    @model_validator(mode="after")
    def _bands(self) -> Training:
        problems: list[str] = []
        bounds = [b.below for b in self.score_bands]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            problems.append("only the last score band omits 'below'")
        inner = [b for b in bounds if b is not None]
        if any(a >= b for a, b in itertools.pairwise(inner)):
            problems.append("score band bounds must strictly increase")
        if abs(sum(b.share for b in self.score_bands) - 1) > SHARE_TOLERANCE:
            problems.append("score band shares must add up to 1")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @cached_property
    def band_edges(self) -> tuple[float, ...]:
        """The bands' ``below`` bounds."""
        return tuple(b.below for b in self.score_bands if b.below is not None)

    def band_of(self, score: float) -> int:
        """Index of the band ``score`` falls in."""
        return bisect.bisect_right(self.band_edges, score)


#: How many reason objects a card keeps for reuse: far more than a card's bins (its points come
#: from its own bins); points from elsewhere get reasons made afresh past it.
REASONS_MADE_AT_MOST = 4_096


class ScorecardDocument(_Strict):
    """A complete, versioned scorecard."""

    version: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    kind: Kind
    description: str = ""
    scaling: Scaling
    base_points: int
    characteristics: dict[str, Characteristic] = Field(min_length=1)
    training: Training | None = None

    @model_validator(mode="after")
    def _document(self) -> ScorecardDocument:
        problems = name_problems(
            {name: {"feature": c.feature} for name, c in self.characteristics.items()}
        )
        if self.training is not None:
            for name, c in self.characteristics.items():
                if c.missing.share is None:
                    problems.append(
                        f"characteristic {name}: a card with training data needs bin shares"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # ---- scoring --------------------------------------------------------------------------
    def evaluate(self, features: Features | Values) -> Scored:
        """Score, points and bin of every characteristic, and the probability of default."""
        values = features.values() if isinstance(features, Features) else features
        return self.scored_at(self.bins_of(values))

    def bins_of(self, values: Values) -> list[int | None]:
        """The bin of every characteristic's value, in order (None: the missing bin)."""
        return [
            _bin_index(lookup, values.get(feature)) for _, (feature, lookup, _, _) in self._rows
        ]

    def points_at(self, bins: Sequence[int | None]) -> list[int]:
        """Each characteristic's points for values in ``bins`` (in order; None: missing bin)."""
        return [
            missing if index is None else bin_points[index]
            for (_, (_, _, bin_points, missing)), index in zip(self._rows, bins, strict=True)
        ]

    def scored_at(self, bins: Sequence[int | None]) -> Scored:
        """:meth:`evaluate`'s answer for values in ``bins`` (in order; None: missing bin)."""
        score, points = self._stated(bins)
        by_name = dict(zip(self.characteristics, bins, strict=True))
        return Scored(score, points, by_name, self.scaling.pd_of(score), self.version)

    def _stated(self, bins: Sequence[int | None]) -> tuple[int, dict[str, int]]:
        points = dict(zip(self.characteristics, self.points_at(bins), strict=True))
        return _clamped(self.base_points + sum(points.values())), points

    def score_of(self, values: Values) -> int:
        """``evaluate(values).score`` without the points, bins and PD: the status machine
        scores every review instant and needs only this."""
        raw = self.base_points
        for _, (feature, lookup, bin_points, missing) in self._rows:
            index = _bin_index(lookup, values.get(feature))
            raw += missing if index is None else bin_points[index]
        return _clamped(raw)

    @property
    def scoring_rows(self) -> tuple[_ScoreRow, ...]:
        """What scoring loops over, as plain data: per characteristic in order, its feature,
        bin lookup (numeric edges or category → bin), points per bin and missing points."""
        return tuple(row for _, row in self._rows)

    @cached_property
    def _rows(self) -> tuple[tuple[str, _ScoreRow], ...]:
        """The characteristics as plain data: what scoring loops over."""
        return tuple(
            (name, (c.feature, c._lookup, tuple(b.points for b in c.bins), c.missing.points))
            for name, c in self.characteristics.items()
        )

    def score(self, features: Features | Values) -> tuple[int, dict[str, int]]:
        """The score (350–950) and points of every characteristic: :meth:`evaluate` at half
        the cost (no bins, no PD), as a status-change event states them."""
        values = features.values() if isinstance(features, Features) else features
        return self._stated(self.bins_of(values))

    def pd_of(self, score: float) -> float:
        """The probability of default over the horizon of a score (see :class:`Scaling`)."""
        return self.scaling.pd_of(score)

    def reasons(self, points: Mapping[str, int], top: int = 4) -> list[AdverseReason]:
        """The adverse-action reasons: characteristics that cost the most points against their
        best bin, largest shortfall first, ties in document order; none that cost nothing."""
        best = self._best_points
        # (minus the shortfall, place in the document, name): sorted as they are.
        ranked = sorted(
            (pts - best[name][0], best[name][1], name)
            for name, pts in points.items()
            if name in best
        )
        return [self._reason(name, -gap) for gap, _, name in ranked[:top] if gap < 0]

    @cached_property
    def _best_points(self) -> dict[str, tuple[int, int]]:
        """Each characteristic's best points and place in the document."""
        order = self.characteristic_order
        return {name: (c.max_points, order[name]) for name, c in self.characteristics.items()}

    def _reason(self, name: str, shortfall: int) -> AdverseReason:
        """The one reason object of a characteristic and shortfall: a card has only so many,
        not one per combination of bins (answers kept per points grew a worker's memory for
        hours: docs/sizing.md)."""
        key = (name, shortfall)
        made = self._reasons_made.get(key)
        if made is None:
            made = AdverseReason(
                characteristic=name,
                code=f"ADVERSE_{name.upper()}",
                shortfall=shortfall,
                text=self.characteristics[name].reason,
            )
            if len(self._reasons_made) < REASONS_MADE_AT_MOST:  # points from elsewhere
                self._reasons_made[key] = made
        return made

    @cached_property
    def _reasons_made(self) -> dict[tuple[str, int], AdverseReason]:
        return {}

    # ---- facts about the card -------------------------------------------------------------
    @cached_property
    def characteristic_order(self) -> dict[str, int]:
        """Each characteristic's place in the document (ties between reasons go by it)."""
        return {name: i for i, name in enumerate(self.characteristics)}

    @cached_property
    def feature_edges(self) -> dict[str, tuple[float, ...]]:
        """Every value at which a bin of this card changes, per feature (the same shape as
        ``Policy.feature_edges``: the review schedule must include these for features that
        move with time alone)."""
        return {
            c.feature: tuple(sorted(set(c.edges))) for c in self.characteristics.values() if c.edges
        }

    @property
    def max_score_points(self) -> int:
        """The score a perfect profile would reach before clamping."""
        return self.base_points + sum(c.max_points for c in self.characteristics.values())

    @property
    def min_score_points(self) -> int:
        """The score the worst profile would reach before clamping."""
        return self.base_points + sum(
            min(c.worst_points, c.missing.points) for c in self.characteristics.values()
        )


def _clamped(raw: int) -> int:
    """A card's points as a score on the product's scale."""
    return max(SCORE_MIN, min(SCORE_MAX, raw))


@dataclass(frozen=True, slots=True)
class Scored:
    """The result of scoring one feature set with one card."""

    score: int
    points: Mapping[str, int]
    #: characteristic → bin index (None: the missing bin).
    bins: Mapping[str, int | None]
    pd: float
    scorecard_version: str


@dataclass(frozen=True, slots=True)
class AdverseReason:
    """One principal reason: a characteristic, its stable code, the points it cost against
    its best bin, and its text in English and Chinese."""

    characteristic: str
    code: str
    shortfall: int
    text: Text

    def as_reason(self, language: Language = "en") -> Reason:
        """The wire form (``schemas.models.Reason``) for a decision's ``reasons``."""
        return make_reason(self.code, self.text, language)
