"""Validation and monitoring statistics of a scorecard, in plain Python (no numpy: the worker
uses PSI and must not need the modelling stack).

Conventions: ``bad`` is 1 for a bad outcome, 0 for a good one; a **score** is higher for a
lower risk; a **pd** is a probability of default (higher is riskier).

* AUC: the probability that a random good scores above a random bad (ties count half);
  Gini = 2·AUC − 1.
* KS: the largest gap between the cumulative score distributions of bads and goods.
* Brier: the mean squared error of the predicted PDs.
* WoE_i = ln(%good_i / %bad_i); IV = Σ (%good_i − %bad_i) · WoE_i.
* PSI = Σ (a_i − e_i) · ln(a_i / e_i) over bins (expected e, actual a); < 0.1 stable,
  0.1–0.25 watch, > 0.25 a significant shift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Share used in place of an empty bin in PSI and WoE (ln 0 is undefined); the common choice.
EMPTY_SHARE = 1e-4
PSI_STABLE = 0.1
PSI_SHIFT = 0.25


def _check(values: Sequence[float], bad: Sequence[int]) -> None:
    if len(values) != len(bad):
        raise ValueError("values and outcomes differ in length")
    if any(b not in (0, 1) for b in bad):
        raise ValueError("outcomes must be 0 (good) or 1 (bad)")


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = average
        i = j + 1
    return ranks


def auc(score: Sequence[float], bad: Sequence[int]) -> float:
    """P(score of a random good > score of a random bad), ties counting half (Mann–Whitney).
    Equals ``sklearn.metrics.roc_auc_score(bad, -score)``."""
    _check(score, bad)
    n_bad = sum(bad)
    n_good = len(bad) - n_bad
    if not n_bad or not n_good:
        raise ValueError("AUC needs both goods and bads")
    ranks = _average_ranks(score)
    good_rank_sum = sum(r for r, b in zip(ranks, bad, strict=True) if not b)
    return (good_rank_sum - n_good * (n_good + 1) / 2) / (n_good * n_bad)


def gini(score: Sequence[float], bad: Sequence[int]) -> float:
    """Gini (accuracy ratio) = 2·AUC − 1."""
    return 2 * auc(score, bad) - 1


def ks(score: Sequence[float], bad: Sequence[int]) -> float:
    """The Kolmogorov–Smirnov statistic: max over thresholds of |F_bad − F_good|, the two
    cumulative score distributions (equals scipy's two-sample ``ks_2samp`` statistic)."""
    _check(score, bad)
    n_bad = sum(bad)
    n_good = len(bad) - n_bad
    if not n_bad or not n_good:
        raise ValueError("KS needs both goods and bads")
    pairs = sorted(zip(score, bad, strict=True))
    cum_bad = cum_good = 0
    best = 0.0
    for i, (value, outcome) in enumerate(pairs):
        if outcome:
            cum_bad += 1
        else:
            cum_good += 1
        if i + 1 < len(pairs) and pairs[i + 1][0] == value:
            continue  # a threshold lies between distinct values only
        best = max(best, abs(cum_bad / n_bad - cum_good / n_good))
    return best


def brier(pd: Sequence[float], bad: Sequence[int]) -> float:
    """Mean squared difference between predicted PD and outcome."""
    _check(pd, bad)
    if not pd:
        raise ValueError("no rows")
    return sum((p - b) ** 2 for p, b in zip(pd, bad, strict=True)) / len(pd)


@dataclass(frozen=True, slots=True)
class Band:
    """One group of rows (a score decile or a PD band) with its outcomes."""

    index: int
    rows: int
    bads: int
    min_score: float
    max_score: float
    mean_pd: float | None

    @property
    def bad_rate(self) -> float:
        """Observed share of bads."""
        return self.bads / self.rows if self.rows else 0.0


def _groups(order: list[int], keys: Sequence[float], groups: int) -> list[list[int]]:
    """Split ``order`` (sorted by ``keys``) into up to ``groups`` near-equal runs, never
    splitting rows of equal key."""
    runs: list[list[int]] = []
    n = len(order)
    start = 0
    for g in range(1, groups + 1):
        end = round(g * n / groups)
        if end <= start:
            continue
        while end < n and keys[order[end]] == keys[order[end - 1]]:
            end += 1
        runs.append(order[start:end])
        start = end
        if start >= n:
            break
    return runs


def score_bands(
    score: Sequence[float],
    bad: Sequence[int],
    pd: Sequence[float] | None = None,
    groups: int = 10,
) -> list[Band]:
    """Rows in ``groups`` groups of about equal size by ascending score (deciles by
    default; ties stay together): rank ordering holds when the bad rate falls from the first
    band (lowest scores) to the last."""
    _check(score, bad)
    order = sorted(range(len(score)), key=lambda i: score[i])
    bands = []
    for index, rows in enumerate(_groups(order, score, groups)):
        bands.append(
            Band(
                index=index + 1,
                rows=len(rows),
                bads=sum(bad[i] for i in rows),
                min_score=score[rows[0]],
                max_score=score[rows[-1]],
                mean_pd=sum(pd[i] for i in rows) / len(rows) if pd is not None else None,
            )
        )
    return bands


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """Predicted against observed probability of default in one band of predicted PD."""

    index: int
    rows: int
    predicted: float
    observed: float
    min_pd: float
    max_pd: float


def calibration(pd: Sequence[float], bad: Sequence[int], groups: int = 10) -> list[CalibrationRow]:
    """Rows grouped by ascending predicted PD (about equal sizes): mean predicted PD against
    the observed bad rate in each group."""
    _check(pd, bad)
    order = sorted(range(len(pd)), key=lambda i: pd[i])
    table = []
    for index, rows in enumerate(_groups(order, pd, groups)):
        table.append(
            CalibrationRow(
                index=index + 1,
                rows=len(rows),
                predicted=sum(pd[i] for i in rows) / len(rows),
                observed=sum(bad[i] for i in rows) / len(rows),
                min_pd=pd[rows[0]],
                max_pd=pd[rows[-1]],
            )
        )
    return table


def rank_ordering_holds(bands: Sequence[Band]) -> bool:
    """Whether the bad rate never rises from one score band to the next higher one."""
    rates = [b.bad_rate for b in bands]
    return all(b <= a for a, b in itertools.pairwise(rates))


def _share(count: float, total: float) -> float:
    return max(count / total, EMPTY_SHARE) if total else EMPTY_SHARE


def woe(goods: Sequence[float], bads: Sequence[float]) -> list[float]:
    """Weight of evidence per bin: ln(%good / %bad) (empty shares replaced by
    :data:`EMPTY_SHARE`)."""
    total_good, total_bad = sum(goods), sum(bads)
    return [
        math.log(_share(g, total_good) / _share(b, total_bad))
        for g, b in zip(goods, bads, strict=True)
    ]


def information_value(goods: Sequence[float], bads: Sequence[float]) -> float:
    """IV = Σ (%good − %bad) · WoE over bins, from the goods and bads counted per bin."""
    total_good, total_bad = sum(goods), sum(bads)
    weights = woe(goods, bads)
    return sum(
        (_share(g, total_good) - _share(b, total_bad)) * w
        for g, b, w in zip(goods, bads, weights, strict=True)
    )


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of ``actual`` (counts or shares per bin) against
    ``expected`` (shares or counts per bin, the same bins)."""
    if len(expected) != len(actual):
        raise ValueError("expected and actual have different bins")
    total_e, total_a = sum(expected), sum(actual)
    if total_e <= 0 or total_a <= 0:
        raise ValueError("PSI needs observations on both sides")
    result = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = _share(e, total_e), _share(a, total_a)
        result += (pa - pe) * math.log(pa / pe)
    return result


def psi_verdict(value: float) -> str:
    """``stable`` (< 0.1), ``watch`` (0.1–0.25) or ``shift`` (> 0.25)."""
    if value < PSI_STABLE:
        return "stable"
    return "watch" if value <= PSI_SHIFT else "shift"
