"""Validation statistics against known values and against scikit-learn / SciPy."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, roc_auc_score

from streams.core import model_metrics as mm


def sample(seed: int, n: int = 400) -> tuple[list[float], list[int]]:
    rng = random.Random(seed)
    bad = [int(rng.random() < 0.2) for _ in range(n)]
    # Integer scores: many ties, as a scorecard gives.
    score = [float(round(rng.gauss(600 - 60 * b, 50) / 10) * 10) for b in bad]
    return score, bad


def test_known_values() -> None:
    score = [1.0, 2.0, 3.0, 4.0]
    bad = [1, 1, 0, 0]
    assert mm.auc(score, bad) == 1.0
    assert mm.gini(score, bad) == 1.0
    assert mm.ks(score, bad) == 1.0
    assert mm.auc([1.0, 1.0, 1.0, 1.0], bad) == 0.5  # all tied: no information
    assert mm.ks([1.0, 1.0, 1.0, 1.0], bad) == 0.0
    assert mm.auc([4.0, 3.0, 2.0, 1.0], bad) == 0.0
    assert mm.brier([0.0, 1.0], [0, 1]) == 0.0
    assert mm.brier([0.5, 0.5], [0, 1]) == 0.25


@pytest.mark.parametrize("seed", range(5))
def test_auc_gini_ks_brier_agree_with_scikit_learn_and_scipy(seed: int) -> None:
    score, bad = sample(seed)
    assert math.isclose(mm.auc(score, bad), roc_auc_score(bad, [-s for s in score]), abs_tol=1e-12)
    assert math.isclose(mm.gini(score, bad), 2 * roc_auc_score(bad, [-s for s in score]) - 1)
    goods = [s for s, b in zip(score, bad, strict=True) if not b]
    bads = [s for s, b in zip(score, bad, strict=True) if b]
    assert math.isclose(mm.ks(score, bad), ks_2samp(goods, bads).statistic, abs_tol=1e-12)
    rng = random.Random(seed)
    pd = [rng.random() for _ in bad]
    assert math.isclose(mm.brier(pd, bad), brier_score_loss(bad, pd), abs_tol=1e-12)


@given(
    st.lists(st.tuples(st.integers(300, 320), st.integers(0, 1)), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(b for _, b in rows) < len(rows)
    )
)
def test_auc_equals_scikit_learn_on_arbitrary_ties(rows: list[tuple[int, int]]) -> None:
    score = [float(s) for s, _ in rows]
    bad = [b for _, b in rows]
    assert math.isclose(mm.auc(score, bad), roc_auc_score(bad, [-s for s in score]), abs_tol=1e-12)


def test_information_value_and_woe_by_hand() -> None:
    goods, bads = [80, 20], [20, 80]
    # WoE = ln(0.8 / 0.2) and ln(0.2 / 0.8); IV = 2 · 0.6 · ln 4.
    assert mm.woe(goods, bads) == pytest.approx([math.log(4), -math.log(4)])
    assert mm.information_value(goods, bads) == pytest.approx(1.2 * math.log(4))
    assert mm.information_value([50, 50], [10, 10]) == 0.0


def test_psi_by_hand_and_its_verdicts() -> None:
    assert mm.psi([0.5, 0.5], [50, 50]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert mm.psi([0.5, 0.5], [70, 30]) == pytest.approx(expected)
    # An empty bin counts as 0.01 % rather than making the index infinite.
    assert math.isfinite(mm.psi([0.5, 0.5], [100, 0]))
    assert (mm.psi_verdict(0.05), mm.psi_verdict(0.2), mm.psi_verdict(0.3)) == (
        "stable",
        "watch",
        "shift",
    )
    with pytest.raises(ValueError, match="different bins"):
        mm.psi([1.0], [1, 2])


def test_score_bands_keep_ties_together_and_rank_ordering() -> None:
    score = [1.0] * 5 + [2.0] * 5 + [3.0] * 10
    bad = [1] * 5 + [1, 0, 0, 0, 0] + [0] * 10
    bands = mm.score_bands(score, bad, groups=4)
    assert [b.rows for b in bands] == [5, 5, 10]  # the 3.0s stay in one band
    assert [b.bad_rate for b in bands] == [1.0, 0.2, 0.0]
    assert mm.rank_ordering_holds(bands)
    assert not mm.rank_ordering_holds(mm.score_bands(score, [0] * 5 + [1] * 15, groups=4))


def test_calibration_compares_predicted_and_observed() -> None:
    pd = [0.1] * 10 + [0.5] * 10
    bad = [1] + [0] * 9 + [1] * 5 + [0] * 5
    table = mm.calibration(pd, bad, groups=2)
    assert [r.predicted for r in table] == pytest.approx([0.1, 0.5])
    assert [r.observed for r in table] == [0.1, 0.5]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="both goods and bads"):
        mm.auc([1.0, 2.0], [0, 0])
    with pytest.raises(ValueError, match="0 \\(good\\) or 1"):
        mm.auc([1.0, 2.0], [0, 2])
    with pytest.raises(ValueError, match="length"):
        mm.ks([1.0], [0, 1])
