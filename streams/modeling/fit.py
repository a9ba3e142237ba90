"""Fitting a scorecard from labelled histories: optbinning's ``BinningProcess`` and
``Scorecard`` (logistic regression on weight of evidence), scaled with ``pdo_odds``, turned
into a :class:`~streams.core.scorecard.ScorecardDocument`.

The method (docs/scorecard.md has the reasoning):

1. **Binning** every candidate characteristic with ``OptimalBinning`` under a monotonic
   constraint on the bad rate where the business direction is known (more days past due
   never raises a score; more verified assets, on-time repayments or verified income never
   lower it), bins of at least ``min_bin_size`` of the rows, at most ``max_n_bins``; split
   points are then rounded to two significant digits (a readable card) and the binning is
   redone on those candidates.
2. **Selection**: characteristics with an information value below ``min_iv`` are left out.
3. **Missing never pays**: the missing bin is given the weight of evidence of the worst
   bin, or its own if that is worse (``metric_missing`` per variable), *before* the
   regression, so the points the model learns already keep the rule.
4. **Logistic regression** on the WoE; a characteristic whose coefficient has the wrong
   sign (a collinear one that would reverse its bins' order) is dropped and the model
   refitted.
5. **Scaling** ``pdo_odds``: points = −(β·WoE + α/n)·factor + offset/n; each
   characteristic is shifted so its worst bin scores 0 (the shift goes to the base points),
   points rounded to integers.
6. The training distribution (bin shares, score deciles) is stored for monitoring.

Needs the ``model`` extra (numpy, pandas, scikit-learn, optbinning).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OptScorecard
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from streams.core.policy import Text
from streams.core.scorecard import (
    NULLABLE_FEATURES,
    Direction,
    Scaling,
    ScorecardDocument,
    validate_scorecard,
)
from streams.modeling.dataset import Dataset
from streams.modeling.evaluate import with_training


@dataclass(frozen=True, slots=True)
class Candidate:
    """A characteristic the fit may use."""

    name: str
    feature: str
    measure: str
    direction: Direction
    reason: Text


#: The candidate characteristics of the default fit. Left out on purpose: unverified assets
#: and declared monthly income (what people merely state: paying for it invites inflating
#: it), outstanding debt (in debt-to-income) and the spending amount (no business direction).
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "worst_days_past_due_12m",
        "worst_days_past_due_12m",
        "worst days past due in the last 12 calendar months",
        "lower_is_better",
        Text(en="Days past due in the last 12 months", zh="近12个月逾期天数"),
    ),
    Candidate(
        "missed_repayments",
        "missed_repayments",
        "decayed count of missed or short repayments (half-life 180 days)",
        "lower_is_better",
        Text(en="Repayments missed or short", zh="存在未还或少还"),
    ),
    Candidate(
        "late_repayments",
        "late_repayments",
        "decayed count of repayments paid after the due date (half-life 180 days)",
        "lower_is_better",
        Text(en="Repayments made late", zh="存在逾期还款"),
    ),
    Candidate(
        "on_time_repayments",
        "on_time_repayments",
        "decayed count of on-time repayments (half-life 180 days)",
        "higher_is_better",
        Text(en="Few on-time repayments recently", zh="近期按时还款次数较少"),
    ),
    Candidate(
        "debt_to_income",
        "debt_to_income",
        "outstanding debt / (12 x monthly income); unknown without an income",
        "lower_is_better",
        Text(en="Debt high relative to income, or income unknown", zh="负债收入比偏高或收入未知"),
    ),
    Candidate(
        "verified_assets",
        "verified_assets",
        "verified deposit + investment + property",
        "higher_is_better",
        Text(en="Few verified assets", zh="已验证资产较少"),
    ),
    Candidate(
        "income_verification",
        "income_verification_level",
        "0 no income known, 1 declared, 2 verified",
        "higher_is_better",
        Text(en="Income not verified", zh="收入未经验证"),
    ),
    Candidate(
        "verified_income",
        "verified_monthly_income",
        "verified monthly income (0 unless verified)",
        "higher_is_better",
        Text(en="Low or unverified income", zh="已验证收入较低或未验证"),
    ),
    Candidate(
        "history_length",
        "history_months",
        "months since the first event",
        "higher_is_better",
        Text(en="Short credit history", zh="信用历史较短"),
    ),
    Candidate(
        "spending_regularity",
        "active_spend_months_6m",
        "months with spending among the last 6",
        "higher_is_better",
        Text(en="Irregular account use", zh="账户使用不规律"),
    ),
)

#: 600 points at good:bad odds 19:1 (a 5 % PD over 12 months), 40 points to double the odds:
#: the policy's thresholds 580 / 620 then mean a PD of about 6.9 % / 3.6 %.
DEFAULT_SCALING = Scaling(pdo=40, score=600, odds=19)
_TRENDS = {
    "higher_is_better": "descending",
    "lower_is_better": "ascending",
    "none": "auto_asc_desc",
}


@dataclass(frozen=True, slots=True)
class FitConfig:
    """What to fit and how."""

    version: str
    description: str = ""
    data: str = "labelled histories"
    candidates: tuple[Candidate, ...] = CANDIDATES
    scaling: Scaling = DEFAULT_SCALING
    min_bin_size: float = 0.05
    max_n_bins: int = 6
    min_iv: float = 0.02
    #: Inverse L2 regularisation strength of the logistic regression.
    c: float = 1.0


@dataclass(frozen=True, slots=True)
class FitResult:
    """The fitted card and how it was reached."""

    card: ScorecardDocument
    #: Information value of every candidate on the training data (after binning).
    iv: dict[str, float]
    #: Candidates left out, with why.
    dropped: dict[str, str]
    #: Logistic regression coefficients on WoE (negative: more WoE, less risk) and intercept.
    coefficients: dict[str, float]
    intercept: float
    #: Points before rounding and shifting, per characteristic: bins then missing.
    raw_points: dict[str, list[float]] = field(repr=False)


def _frame(dataset: Dataset, candidates: Sequence[Candidate]) -> pd.DataFrame:
    rows = dataset.values()
    return pd.DataFrame(
        {
            c.name: np.array(
                [np.nan if r[c.feature] is None else float(r[c.feature]) for r in rows]  # type: ignore[arg-type]
            )
            for c in candidates
        }
    )


def nice(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (split points people can read)."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = math.floor(math.log10(abs(value)))
    return round(value, digits - 1 - magnitude)


def _binning_params(
    config: FitConfig, candidates: Sequence[Candidate], splits: dict[str, list[float]] | None
) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {}
    for c in candidates:
        p: dict[str, Any] = {"monotonic_trend": _TRENDS[c.direction]}
        if splits is not None:
            p["user_splits"] = splits[c.name]
        params[c.name] = p
    return params


def _binning_process(
    config: FitConfig,
    candidates: Sequence[Candidate],
    splits: dict[str, list[float]] | None = None,
    missing_woe: dict[str, float] | None = None,
) -> BinningProcess:
    return BinningProcess(
        variable_names=[c.name for c in candidates],
        max_n_bins=config.max_n_bins,
        min_bin_size=config.min_bin_size,
        selection_criteria={"iv": {"min": config.min_iv}},
        binning_fit_params=_binning_params(config, candidates, splits),
        binning_transform_params=(
            {name: {"metric_missing": woe} for name, woe in missing_woe.items()}
            if missing_woe
            else None
        ),
    )


def _rounded_splits(
    process: BinningProcess, candidates: Sequence[Candidate]
) -> dict[str, list[float]]:
    result = {}
    for c in candidates:
        splits = process.get_binned_variable(c.name).splits
        rounded = sorted({nice(float(s)) for s in splits})
        result[c.name] = rounded
    return result


def _tables(process: BinningProcess, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    return {
        name: process.get_binned_variable(name).binning_table.build(add_totals=False)
        for name in names
    }


def _missing_woe(table: pd.DataFrame, n_bins: int) -> float:
    """The WoE the missing bin is scored with: the worst (lowest) WoE of the regular bins,
    or the missing bin's own when it is lower still and observed."""
    regular = table.iloc[:n_bins]
    worst = float(regular["WoE"].min())
    missing = table.iloc[-1]
    if missing["Count"] > 0 and missing["Event"] > 0 and missing["Non-event"] > 0:
        return min(worst, float(missing["WoE"]))
    return worst


def fit_scorecard(dataset: Dataset, config: FitConfig) -> FitResult:
    """Fit a scorecard document to ``dataset`` (see the module docstring for the method)."""
    by_name = {c.name: c for c in config.candidates}
    frame = _frame(dataset, config.candidates)
    y = np.array(dataset.bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning's solver chatter on small samples
        first = _binning_process(config, config.candidates).fit(frame, y)
        splits = _rounded_splits(first, config.candidates)
        # A characteristic the binning leaves in one bin says nothing (IV 0).
        dropped = {c: "no split: a single bin" for c, found in splits.items() if not found}
        binned = tuple(c for c in config.candidates if splits[c.name])
        if not binned:
            raise ValueError("no characteristic has a split on this data")
        process = _binning_process(config, binned, splits).fit(frame[[c.name for c in binned]], y)
    names = [str(n) for n in process.get_support(names=True)]
    all_tables = _tables(process, [c.name for c in binned])
    iv = {name: float(table["IV"].sum()) for name, table in all_tables.items()}
    iv.update(dict.fromkeys(dropped, 0.0))
    dropped.update(
        {
            c.name: f"information value {iv[c.name]:.3f} below {config.min_iv}"
            for c in binned
            if c.name not in names
        }
    )
    while True:
        selected = [by_name[n] for n in names]
        n_bins = {n: len(process.get_binned_variable(n).splits) + 1 for n in names}
        missing_woe = {n: _missing_woe(all_tables[n], n_bins[n]) for n in names}
        model = OptScorecard(
            binning_process=_binning_process(config, selected, splits, missing_woe),
            estimator=LogisticRegression(C=config.c, max_iter=1000),
            scaling_method="pdo_odds",
            scaling_method_params={
                "pdo": config.scaling.pdo,
                "odds": config.scaling.odds,
                "scorecard_points": config.scaling.score,
            },
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(frame[names], y)
        kept = [str(n) for n in model.binning_process_.get_support(names=True)]
        coefficients = dict(zip(kept, model.estimator_.coef_.flatten().tolist(), strict=True))
        for n in set(names) - set(kept):
            dropped[n] = "left out by the binning process"
        # A coefficient ≥ 0 would reverse the bins' order (more WoE, more risk): drop the
        # worst offender only, as the others may be right once it is gone.
        wrong = max(coefficients, key=lambda n: coefficients[n])
        if coefficients[wrong] < 0:
            break
        dropped[wrong] = (
            f"coefficient of the wrong sign ({coefficients[wrong]:+.3f}): collinear with the "
            "other characteristics"
        )
        names = [n for n in kept if n != wrong]
        if not names:
            raise ValueError("no characteristic is left to fit")
    table = model.table(style="detailed")
    raw_points: dict[str, list[float]] = {}
    characteristics: dict[str, Any] = {}
    base = 0.0
    for name in kept:
        rows = table[table["Variable"] == name]
        bins = n_bins[name]
        points = [float(p) for p in rows["Points"].iloc[:bins]] + [float(rows["Points"].iloc[-1])]
        raw_points[name] = points
        lowest = min(points)
        base += lowest
        shifted = [round(p - lowest) for p in points]
        edges = [float(s) for s in model.binning_process_.get_binned_variable(name).splits]
        candidate = by_name[name]
        characteristics[name] = {
            "feature": candidate.feature,
            "measure": candidate.measure,
            "direction": candidate.direction,
            "reason": candidate.reason.model_dump(),
            "bins": [{"below": e, "points": p} for e, p in zip(edges, shifted, strict=False)]
            + [{"points": shifted[bins - 1]}],
            "missing": {"points": min(shifted[-1], min(shifted[:bins]))},
        }
    card = validate_scorecard(
        {
            "version": config.version,
            "kind": "fitted",
            "description": config.description,
            "scaling": config.scaling.model_dump(),
            "base_points": round(base),
            "characteristics": characteristics,
        }
    )
    return FitResult(
        card=with_training(card, dataset, config.data),
        iv=iv,
        dropped=dropped,
        coefficients=coefficients,
        intercept=float(model.estimator_.intercept_[0]),
        raw_points=raw_points,
    )


def baseline_auc(
    train: Dataset, test: Dataset, candidates: Sequence[Candidate] = CANDIDATES
) -> float:
    """AUC on ``test`` of a plain logistic regression on the same point-in-time features
    (raw values standardised, an unknown value as 0 plus an indicator): the yardstick a
    scorecard's binning and rounding must not lose much against."""

    def matrix(dataset: Dataset) -> np.ndarray:
        columns = []
        for c in candidates:
            values = dataset.column(c.feature)
            columns.append([0.0 if v is None else float(v) for v in values])
            if c.feature in NULLABLE_FEATURES:
                columns.append([1.0 if v is None else 0.0 for v in values])
        return np.array(columns, dtype=float).T

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(matrix(train), np.array(train.bad))
    return float(roc_auc_score(np.array(test.bad), model.predict_proba(matrix(test))[:, 1]))
