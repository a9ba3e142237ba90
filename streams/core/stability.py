"""Stability monitoring of a scorecard: PSI of the score and of every characteristic against
the training distribution stored in the card, over a window of recent scorings. Pure.

The worker feeds :class:`StabilityMonitor` each :class:`~streams.core.scorecard.Scored` it
computes (``observe``) and exports :meth:`StabilityMonitor.report` (e.g. as gauges): PSI < 0.1
stable, 0.1–0.25 watch, > 0.25 a significant shift (investigate or refit). The window is the
last ``window`` observations; counts are kept incrementally, so ``observe`` is O(number of
characteristics) and ``report`` O(number of bins).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.core import model_metrics as mm
from streams.core.scorecard import ScorecardDocument, Scored


def score_band_shares(card: ScorecardDocument, scores: Sequence[float]) -> list[int]:
    """How many of ``scores`` fall in each of the card's training score bands."""
    if card.training is None:
        raise ValueError(f"scorecard {card.version} has no training distribution")
    counts = [0] * len(card.training.score_bands)
    for score in scores:
        counts[card.training.band_of(score)] += 1
    return counts


def characteristic_shares(
    card: ScorecardDocument, scored: Sequence[Scored]
) -> dict[str, list[float]]:
    """Share of ``scored`` rows in each bin of every characteristic (the missing bin last)."""
    shares = {}
    for name, c in card.characteristics.items():
        counts = [0] * (len(c.bins) + 1)
        for s in scored:
            index = s.bins[name]
            counts[len(c.bins) if index is None else index] += 1
        total = len(scored) or 1
        shares[name] = [count / total for count in counts]
    return shares


@dataclass(frozen=True, slots=True)
class StabilityReport:
    """PSI of the score and of each characteristic over the current window."""

    scorecard_version: str
    observations: int
    score_psi: float
    characteristic_psi: Mapping[str, float]

    @property
    def verdict(self) -> str:
        """The worst verdict of the score and the characteristics."""
        worst = max([self.score_psi, *self.characteristic_psi.values()])
        return mm.psi_verdict(worst)


class StabilityMonitor:
    """PSI against one card's training distribution over the last ``window`` scorings.

    Not thread-safe (one per worker task); cheap enough to feed every assessment. Swap cards
    by creating a new monitor (a window compares with one training distribution only).
    """

    def __init__(self, card: ScorecardDocument, window: int = 10_000) -> None:
        if card.training is None:
            raise ValueError(f"scorecard {card.version} has no training distribution")
        if window < 1:
            raise ValueError("the window needs at least one observation")
        self.card = card
        self.window = window
        self._names = list(card.characteristics)
        self._sizes = [len(c.bins) + 1 for c in card.characteristics.values()]
        self._expected_score = [b.share for b in card.training.score_bands]
        self._expected = [
            [b.share or 0.0 for b in c.bins] + [c.missing.share or 0.0]
            for c in card.characteristics.values()
        ]
        self._recent: deque[tuple[int, tuple[int, ...]]] = deque()
        self._score_counts = [0] * len(self._expected_score)
        self._counts = [[0] * size for size in self._sizes]

    def __len__(self) -> int:
        return len(self._recent)

    def observe(self, scored: Scored) -> None:
        """Count one scoring (of this card); the oldest leaves once the window is full."""
        if scored.scorecard_version != self.card.version:
            raise ValueError("a scoring of another scorecard version")
        assert self.card.training is not None
        band = self.card.training.band_of(scored.score)
        indices = (scored.bins[name] for name in self._names)
        slots = tuple(
            size - 1 if index is None else index
            for index, size in zip(indices, self._sizes, strict=True)
        )
        self._recent.append((band, slots))
        self._score_counts[band] += 1
        for counts, slot in zip(self._counts, slots, strict=True):
            counts[slot] += 1
        if len(self._recent) > self.window:
            old_band, old_slots = self._recent.popleft()
            self._score_counts[old_band] -= 1
            for counts, slot in zip(self._counts, old_slots, strict=True):
                counts[slot] -= 1

    def report(self) -> StabilityReport | None:
        """PSI over the window (None before the first observation)."""
        if not self._recent:
            return None
        return StabilityReport(
            scorecard_version=self.card.version,
            observations=len(self._recent),
            score_psi=mm.psi(self._expected_score, self._score_counts),
            characteristic_psi={
                name: mm.psi(expected, counts)
                for name, expected, counts in zip(
                    self._names, self._expected, self._counts, strict=True
                )
            },
        )
