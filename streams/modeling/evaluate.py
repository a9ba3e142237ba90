"""Validation of any scorecard document on any labelled dataset, in plain Python.

:func:`evaluate_card` gives discrimination (AUC, Gini, KS), calibration (Brier, predicted
against observed PD by band), rank ordering (bad rate by score decile), information value
and observed bad rate per characteristic bin (with a check of the declared direction), and
stability (PSI) against the card's training distribution. :func:`calibrate_scaling` fits a
card's score → PD mapping to outcomes (for an expert card); :func:`with_training` stores a
population's distribution in a card (the reference monitoring compares with).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streams.core import model_metrics as mm
from streams.core.scorecard import Scaling, ScorecardDocument, Scored, validate_scorecard
from streams.core.stability import characteristic_shares, score_band_shares
from streams.modeling.dataset import Dataset


@dataclass(frozen=True, slots=True)
class BinStats:
    """One bin of a characteristic on a dataset."""

    bin: str
    points: int
    rows: int
    bads: int

    @property
    def bad_rate(self) -> float:
        """Observed share of bads in the bin."""
        return self.bads / self.rows if self.rows else 0.0


@dataclass(frozen=True, slots=True)
class CharacteristicStats:
    """A characteristic on a dataset: IV, bins, whether observed bad rates follow the
    declared direction, and PSI against training."""

    name: str
    feature: str
    direction: str
    iv: float
    bins: list[BinStats]
    #: Observed bad rate never moves against the declared direction across populated bins
    #: (None when no direction is declared).
    observed_monotonic: bool | None
    psi: float | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Every validation figure of one card on one dataset."""

    scorecard_version: str
    data: str
    n: int
    bads: int
    bad_rate: float
    auc: float
    gini: float
    ks: float
    brier: float
    mean_pd: float
    deciles: list[mm.Band]
    rank_ordering: bool
    calibration: list[mm.CalibrationRow]
    characteristics: list[CharacteristicStats]
    score_psi: float | None
    scores: list[int] = field(repr=False)
    pds: list[float] = field(repr=False)
    outcomes: list[int] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The headline figures (JSON-ready)."""
        return {
            "scorecard_version": self.scorecard_version,
            "data": self.data,
            "n": self.n,
            "bads": self.bads,
            "bad_rate": round(self.bad_rate, 6),
            "auc": round(self.auc, 6),
            "gini": round(self.gini, 6),
            "ks": round(self.ks, 6),
            "brier": round(self.brier, 6),
            "mean_pd": round(self.mean_pd, 6),
            "rank_ordering": self.rank_ordering,
            "score_psi": None if self.score_psi is None else round(self.score_psi, 6),
        }

    def to_json(self) -> dict[str, Any]:
        """Everything (JSON-ready), without the per-row scores."""
        result = self.summary()
        result["deciles"] = [{**asdict(b), "bad_rate": round(b.bad_rate, 6)} for b in self.deciles]
        result["calibration"] = [asdict(row) for row in self.calibration]
        result["characteristics"] = [
            {
                "name": c.name,
                "feature": c.feature,
                "direction": c.direction,
                "iv": round(c.iv, 6),
                "observed_monotonic": c.observed_monotonic,
                "psi": None if c.psi is None else round(c.psi, 6),
                "bins": [{**asdict(b), "bad_rate": round(b.bad_rate, 6)} for b in c.bins],
            }
            for c in self.characteristics
        ]
        return result


def bin_labels(card: ScorecardDocument, name: str) -> list[str]:
    """Readable labels of a characteristic's bins, then ``missing``."""
    c = card.characteristics[name]
    labels = []
    lower: float | None = None
    for b in c.bins:
        if b.values is not None:
            labels.append("{" + ", ".join(f"{v:g}" for v in b.values) + "}")
            continue
        if b.below is None:
            labels.append(f">= {lower:g}" if lower is not None else "any")
        elif lower is None:
            labels.append(f"< {b.below:g}")
        else:
            labels.append(f"[{lower:g}, {b.below:g})")
        lower = b.below
    return [*labels, "missing"]


def _follows(direction: str, rates: Sequence[float]) -> bool | None:
    if direction == "none":
        return None
    if direction == "higher_is_better":  # bad rate must not rise with the value
        return all(b <= a + 1e-12 for a, b in itertools.pairwise(rates))
    return all(b >= a - 1e-12 for a, b in itertools.pairwise(rates))


def _characteristic_stats(
    card: ScorecardDocument, scored: Sequence[Scored], bad: Sequence[int]
) -> list[CharacteristicStats]:
    result = []
    for name, c in card.characteristics.items():
        n_bins = len(c.bins)
        rows = [0] * (n_bins + 1)
        bads = [0] * (n_bins + 1)
        for s, outcome in zip(scored, bad, strict=True):
            index = s.bins[name]
            slot = n_bins if index is None else index
            rows[slot] += 1
            bads[slot] += outcome
        goods = [r - b for r, b in zip(rows, bads, strict=True)]
        points = [b.points for b in c.bins] + [c.missing.points]
        labels = bin_labels(card, name)
        stats = [BinStats(labels[i], points[i], rows[i], bads[i]) for i in range(n_bins + 1)]
        populated = [s.bad_rate for s in stats[:n_bins] if s.rows]
        psi = None
        if card.training is not None:
            expected = [b.share or 0.0 for b in c.bins] + [c.missing.share or 0.0]
            psi = mm.psi(expected, rows)
        result.append(
            CharacteristicStats(
                name=name,
                feature=c.feature,
                direction=c.direction,
                iv=mm.information_value(goods, bads),
                bins=stats,
                observed_monotonic=_follows(c.direction, populated),
                psi=psi,
            )
        )
    return result


def evaluate_card(
    card: ScorecardDocument, dataset: Dataset, data: str = "", groups: int = 10
) -> Evaluation:
    """Every validation figure of ``card`` on ``dataset``."""
    scored = [card.evaluate(f) for f in dataset.features]
    scores = [s.score for s in scored]
    pds = [s.pd for s in scored]
    bad = dataset.bad
    deciles = mm.score_bands(scores, bad, pds, groups)
    score_psi = None
    if card.training is not None:
        expected = [b.share for b in card.training.score_bands]
        score_psi = mm.psi(expected, score_band_shares(card, scores))
    return Evaluation(
        scorecard_version=card.version,
        data=data,
        n=len(dataset),
        bads=sum(bad),
        bad_rate=dataset.bad_rate,
        auc=mm.auc(scores, bad),
        gini=mm.gini(scores, bad),
        ks=mm.ks(scores, bad),
        brier=mm.brier(pds, bad),
        mean_pd=sum(pds) / len(pds),
        deciles=deciles,
        rank_ordering=mm.rank_ordering_holds(deciles),
        calibration=mm.calibration(pds, bad, groups),
        characteristics=_characteristic_stats(card, scored, bad),
        score_psi=score_psi,
        scores=scores,
        pds=pds,
        outcomes=list(bad),
    )


def logistic_fit(x: Sequence[float], y: Sequence[int], iterations: int = 50) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of P(y = 1) = σ(a + b·x), by Newton's method on centred
    ``x`` (plain Python: two parameters)."""
    n = len(x)
    mean = sum(x) / n
    xs = [v - mean for v in x]
    a = b = 0.0
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for v, t in zip(xs, y, strict=True):
            z = a + b * v
            p = 1 / (1 + math.exp(-z)) if z > -700 else 0.0
            w = p * (1 - p)
            ga += t - p
            gb += (t - p) * v
            haa += w
            hab += w * v
            hbb += w * v * v
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a + da, b + db
        if abs(da) < 1e-12 and abs(db) < 1e-12:
            break
    return a - b * mean, b


def calibrate_scaling(
    card: ScorecardDocument, dataset: Dataset, reference_score: float = 600
) -> Scaling:
    """The card's score → PD mapping fitted to outcomes: ln(odds good:bad) = α + β·score by
    logistic regression, i.e. factor = 1/β, PDO = ln 2 / β, and the odds at
    ``reference_score``."""
    scores = [float(card.evaluate(f).score) for f in dataset.features]
    a, b = logistic_fit(scores, dataset.bad)  # log-odds of *bad*
    beta = -b
    if beta <= 0:
        raise ValueError("the score does not rank risk on this data: higher scores are worse")
    return card.scaling.model_copy(
        update={
            "pdo": round(math.log(2) / beta, 4),
            "score": reference_score,
            "odds": round(math.exp(-a - b * reference_score), 6),
            "calibrated": True,
        }
    )


def with_training(
    card: ScorecardDocument, dataset: Dataset, data: str, bands: int = 10
) -> ScorecardDocument:
    """The card with ``dataset`` stored as its training distribution: every bin's share
    (missing included) and score bands (deciles of the scores, ties kept together)."""
    scored = [card.evaluate(f) for f in dataset.features]
    scores = [s.score for s in scored]
    deciles = mm.score_bands(scores, dataset.bad, None, bands)
    edges = [float(band.min_score) for band in deciles[1:]]
    counts = [0] * (len(edges) + 1)
    for score in scores:
        counts[sum(1 for e in edges if score >= e)] += 1
    score_bands: list[dict[str, Any]] = [
        {"below": edge, "share": round(count / len(scores), 6)}
        for edge, count in zip(edges, counts, strict=False)
    ]
    score_bands.append({"share": round(counts[-1] / len(scores), 6)})
    doc = card.model_dump(mode="json", exclude_none=True)
    for name, shares in characteristic_shares(card, scored).items():
        c = doc["characteristics"][name]
        for b, share in zip(c["bins"], shares[:-1], strict=True):
            b["share"] = round(share, 6)
        c["missing"]["share"] = round(shares[-1], 6)
    doc["training"] = {
        "data": data,
        "rows": len(dataset),
        "bad_rate": round(dataset.bad_rate, 6),
        "score_bands": score_bands,
    }
    return validate_scorecard(doc)
