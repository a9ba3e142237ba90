"""Scorecard monitoring in a worker: the scores behind its decisions, compared with the card's
training distribution (population stability, :mod:`streams.core.stability`), exported as
gauges; and the probability of default of every decision, by segment and outcome."""

from __future__ import annotations

import contextlib
import logging

from schemas.models import LoanDecision
from streams.core.scoring import Assessment
from streams.core.stability import StabilityMonitor
from streams.metrics import Metrics

log = logging.getLogger(__name__)

#: How often (in observations) the PSI gauges are recomputed: a report costs a pass over the
#: bins, an observation a few counter updates.
EXPORT_EVERY = 50


class ScorecardMonitor:
    """One :class:`StabilityMonitor` per scorecard version in use, fed with the assessment of
    every fresh decision; a new card starts a new window (it compares with its own training
    distribution), and the gauges of a card no longer in use are removed."""

    def __init__(self, metrics: Metrics, window: int) -> None:
        self.metrics = metrics
        self.window = window
        self._monitor: StabilityMonitor | None = None
        self._untrained: set[str] = set()
        self._since_export = 0

    def observe(self, decision: LoanDecision, assessment: Assessment | None) -> None:
        """Count one decision (its PD) and, when it was scored, its scoring."""
        if assessment is None:
            return
        self.metrics.decision_pd.labels(assessment.segment, decision.outcome.value).observe(
            assessment.pd
        )
        card = assessment.card
        if self._monitor is None or self._monitor.card.version != card.version:
            if card.training is None:
                if card.version not in self._untrained:
                    self._untrained.add(card.version)
                    log.warning("scorecard %s has no training distribution: no PSI", card.version)
                return
            self._retire()
            self._monitor = StabilityMonitor(card, self.window)
        self._monitor.observe(assessment.scored)
        self._since_export += 1
        if self._since_export >= EXPORT_EVERY or len(self._monitor) < EXPORT_EVERY:
            self.export()

    def export(self) -> None:
        """Set the PSI gauges from the current window."""
        self._since_export = 0
        report = self._monitor.report() if self._monitor is not None else None
        if report is None:
            return
        version = report.scorecard_version
        self.metrics.scorecard_psi.labels(version, "score").set(report.score_psi)
        for name, value in report.characteristic_psi.items():
            self.metrics.scorecard_psi.labels(version, name).set(value)
        self.metrics.scorecard_scorings.labels(version).set(report.observations)

    def _retire(self) -> None:
        if self._monitor is None:
            return
        version = self._monitor.card.version
        with contextlib.suppress(KeyError):  # never exported: nothing to remove
            for name in ("score", *self._monitor.card.characteristics):
                self.metrics.scorecard_psi.remove(version, name)
            self.metrics.scorecard_scorings.remove(version)
        self._monitor = None
