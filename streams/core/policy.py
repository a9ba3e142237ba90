"""The credit policy as data: limits, status thresholds with hysteresis, hard rules, segments,
individual exceptions and promotions. Validated by pydantic, versioned, immutable. (The score
itself comes from a scorecard document, :mod:`streams.core.scorecard`, versioned on its own.)

A policy never half-applies: :func:`parse_policy` either returns a complete, consistent
:class:`Policy` or raises :class:`InvalidPolicy` naming every problem.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.core.state import DELINQUENCY_LEVELS

#: Features that scorecard attributes and rules may name (numeric fields of ``Features``).
FeatureName = Literal[
    "on_time_repayments",
    "late_repayments",
    "missed_repayments",
    "worst_days_past_due_12m",
    "outstanding_debt",
    "monthly_income",
    "verified_monthly_income",
    "income_verification_level",
    "debt_to_income",
    "verified_assets",
    "unverified_assets",
    "average_monthly_spend_6m",
    "active_spend_months_6m",
    "history_months",
]

_NAME = r"^[a-z][a-z0-9_]{0,47}$"
_CODE = r"^[A-Z][A-Z0-9_]{0,63}$"


class InvalidPolicy(ValueError):
    """A policy document that cannot be applied; ``problems`` lists why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid policy:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Strict(BaseModel):
    # Unknown keys in a policy are mistakes (a typo would silently change nothing).
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A text in English and Simplified Chinese."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class Bin(_Strict):
    """Feature values below ``below`` (exclusive; omitted on the last bin) score ``points``."""

    below: float | None = None
    points: int


class Attribute(_Strict):
    """One scorecard characteristic."""

    feature: FeatureName
    measure: str
    adverse: Text
    bins: list[Bin] = Field(min_length=1)
    missing_points: int = Field(0, description="Points when the feature is unknown.")

    @field_validator("bins")
    @classmethod
    def _bins_cover_the_line(cls, bins: list[Bin]) -> list[Bin]:
        bounds = [b.below for b in bins]
        if bounds[-1] is not None:
            raise ValueError("the last bin must have no 'below' bound")
        inner = [b for b in bounds[:-1]]
        if any(b is None for b in inner):
            raise ValueError("only the last bin may omit 'below'")
        values = [float(b) for b in inner if b is not None]
        if values != sorted(set(values)) or len(values) != len(set(values)):
            raise ValueError("'below' bounds must strictly increase")
        return bins

    @property
    def max_points(self) -> int:
        """The best this attribute can give; shortfalls from it are adverse factors."""
        return max([b.points for b in self.bins] + [self.missing_points])

    def points(self, value: float | None) -> int:
        """Points for a feature value."""
        if value is None:
            return self.missing_points
        for b in self.bins:
            if b.below is None or value < b.below:
                return b.points
        raise AssertionError("validated bins cover every value")  # pragma: no cover


class Scorecard(_Strict):
    """A hand-set scorecard inside a policy document, as policies carried before scorecards
    became documents of their own. Still accepted, so that every policy ever published stays
    valid, but **not used to score**: the scorecard in effect does
    (``streams/policies/scorecard-expert.yaml`` is this card as a document)."""

    base_points: int
    attributes: dict[str, Attribute] = Field(min_length=1)

    @field_validator("attributes")
    @classmethod
    def _names(cls, attributes: dict[str, Attribute]) -> dict[str, Attribute]:
        import re

        bad = [n for n in attributes if not re.match(_NAME, n)]
        if bad:
            raise ValueError(f"attribute names must be snake_case: {bad}")
        return attributes


class Condition(_Strict):
    """A bound on one feature; an unknown feature value never satisfies a condition."""

    feature: FeatureName
    at_least: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Condition:
        if self.at_least is None and self.below is None:
            raise ValueError(f"condition on {self.feature} needs 'at_least' or 'below'")
        if self.at_least is not None and self.below is not None and self.below <= self.at_least:
            raise ValueError(f"condition on {self.feature} can never hold")
        return self

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the bounds."""
        if value is None:
            return False
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.below is not None and value >= self.below)


class Rule(_Strict):
    """Matches when every ``all`` condition holds and, if ``any`` is given, one of those."""

    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        if not self.all and not self.any:
            raise ValueError("a rule needs at least one condition")
        return self

    def matches(self, values: dict[str, float | None]) -> bool:
        """Whether the feature ``values`` satisfy the rule."""
        for condition in self.all:
            if not condition.holds(values[condition.feature]):
                return False
        return not self.any or any(c.holds(values[c.feature]) for c in self.any)


class Thresholds(_Strict):
    """Hysteresis: an open line closes below ``close_below``; a closed one reopens at
    ``reopen_at`` or above."""

    close_below: int = Field(ge=350, le=950)
    reopen_at: int = Field(ge=350, le=950)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.reopen_at < self.close_below:
            raise ValueError("reopen_at must be at least close_below")
        return self

    def lowered(self, points: int) -> Thresholds:
        """Both thresholds lowered by ``points`` (a promotion), within the score range."""
        return Thresholds(
            close_below=max(350, self.close_below - points),
            reopen_at=max(350, self.reopen_at - points),
        )


class Segment(_Strict):
    """A named group of users with their own thresholds and limit multiplier."""

    name: str = Field(pattern=_NAME)
    description: Text
    when: Rule
    thresholds: Thresholds
    limit_multiplier: Decimal = Field(Decimal(1), gt=0, le=10)


class SegmentException(_Strict):
    """Differentiated credit: a user of a restrictive segment whose own profile qualifies is
    judged by the exception's thresholds, with a capped limit, and told so."""

    name: str = Field(pattern=_NAME)
    code: str = Field(pattern=_CODE)
    text: Text
    segments: list[str] = Field(min_length=1)
    when: Rule
    thresholds: Thresholds
    limit_cap: Decimal = Field(gt=0)


class Promotion(_Strict):
    """A time-boxed campaign: for requests with ``starts_at <= requested_at < ends_at`` from
    users of ``segments`` (empty = everyone), thresholds drop and limits grow."""

    name: str = Field(pattern=_NAME)
    text: Text
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    segments: list[str] = Field(default_factory=list)
    threshold_reduction: int = Field(0, ge=0, le=200)
    limit_multiplier: Decimal = Field(Decimal(1), ge=1, le=5)

    @model_validator(mode="after")
    def _window(self) -> Promotion:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"promotion {self.name} ends before it starts")
        return self

    def active_at(self, moment: datetime) -> bool:
        """Whether a request at ``moment`` falls in the window."""
        return self.starts_at <= moment < self.ends_at


class FreezeRule(_Strict):
    """A repayment at least this late within the window freezes the line; freezing wins over
    every exception and promotion."""

    days_past_due_at_least: int = 30
    within_days: float = Field(90, gt=0)

    @field_validator("days_past_due_at_least")
    @classmethod
    def _tracked_level(cls, level: int) -> int:
        if level not in DELINQUENCY_LEVELS:
            raise ValueError(f"must be one of the tracked levels {DELINQUENCY_LEVELS}")
        return level

    @cached_property
    def window(self) -> timedelta:
        """How long after the late repayment the line stays frozen (inclusive)."""
        return timedelta(days=self.within_days)


class StatusRules(_Strict):
    """How the effective status is derived from the score."""

    thresholds: Thresholds
    min_dwell_days: float = Field(7, ge=0, description="A status changes at most this often.")
    freeze: FreezeRule = Field(default_factory=FreezeRule)
    stale_after_days: float = Field(180, gt=0)

    @cached_property
    def min_dwell(self) -> timedelta:
        """The dwell time as a duration."""
        return timedelta(days=self.min_dwell_days)


class Limits(_Strict):
    """Credit limit = income × a multiple growing with the score + a share of assets."""

    minimum: Decimal = Field(ge=0)
    maximum: Decimal = Field(gt=0)
    income_multiple_at_reopen: Decimal = Field(gt=0)
    income_multiple_at_max_score: Decimal = Field(gt=0)
    unverified_income_weight: Decimal = Field(ge=0, le=1)
    verified_asset_ratio: Decimal = Field(ge=0, le=1)
    unverified_asset_ratio: Decimal = Field(ge=0, le=1)
    rounding: Decimal = Field(gt=0)
    min_partial_amount: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.maximum < self.minimum:
            raise ValueError("maximum must be at least minimum")
        return self


class Policy(_Strict):
    """A complete, versioned credit policy."""

    version: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    description: str = ""
    #: Legacy (see :class:`Scorecard`): accepted, never used to score.
    scorecard: Scorecard | None = None
    status: StatusRules
    limits: Limits
    segments: list[Segment] = Field(default_factory=list)
    exceptions: list[SegmentException] = Field(default_factory=list)
    promotions: list[Promotion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Policy:
        names = [s.name for s in self.segments]
        if len(names) != len(set(names)):
            raise ValueError("segment names must be unique")
        known = {*names, "standard"}
        for e in self.exceptions:
            missing = set(e.segments) - known
            if missing:
                raise ValueError(f"exception {e.name} names unknown segments {sorted(missing)}")
        for p in self.promotions:
            missing = set(p.segments) - known
            if missing:
                raise ValueError(f"promotion {p.name} names unknown segments {sorted(missing)}")
        return self

    @cached_property
    def feature_edges(self) -> dict[str, tuple[float, ...]]:
        """Every value at which some rule of this policy changes its answer, per feature:
        where a feature that moves with time alone (decay, history length) can change a
        segment or an exception (the scorecard's bin edges come from the card)."""
        edges: dict[str, set[float]] = {}
        rules = [s.when for s in self.segments] + [e.when for e in self.exceptions]
        for rule in rules:
            for condition in (*rule.all, *rule.any):
                for bound in (condition.at_least, condition.below):
                    if bound is not None:
                        edges.setdefault(condition.feature, set()).add(bound)
        return {feature: tuple(sorted(values)) for feature, values in edges.items()}


def _problems(error: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}"
        for e in error.errors(include_url=False)
    ]


def parse_policy(text: str | bytes) -> Policy:
    """Parse a YAML or JSON policy document, or raise :class:`InvalidPolicy` with every
    problem found."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidPolicy([f"not YAML or JSON: {exc}"]) from None
    if not isinstance(doc, dict):
        raise InvalidPolicy(["the document must be a mapping"])
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        raise InvalidPolicy(_problems(exc)) from None


def policy_json(policy: Policy) -> str:
    """The canonical JSON form of a policy (what travels on the policy topic)."""
    return json.dumps(policy.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


def load_default_policy() -> Policy:
    """The policy shipped with creditline (``streams/policies/default.yaml``)."""
    from importlib import resources

    return parse_policy(resources.files("streams.policies").joinpath("default.yaml").read_text())
