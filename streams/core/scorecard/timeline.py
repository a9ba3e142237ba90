"""Scorecard versions over time: the card in force at an instant."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from streams.core.scorecard.document import ScorecardDocument


@dataclass(frozen=True, slots=True)
class ScorecardTimeline:
    """Card versions with the instants they take effect; ``base`` holds before the first.
    The same contract as :class:`streams.core.timeline.PolicyTimeline`: every review and
    decision scores with the card in force at its own instant."""

    base: ScorecardDocument
    #: (effective from, card), ascending by instant.
    versions: tuple[tuple[datetime, ScorecardDocument], ...] = ()
    _instants: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_instants", tuple(v[0] for v in self.versions))

    @classmethod
    def of(
        cls, base: ScorecardDocument, versions: Sequence[tuple[datetime, ScorecardDocument]]
    ) -> ScorecardTimeline:
        """A timeline from versions in any order (for equal instants the later published
        wins: a stable sort keeps publication order)."""
        return cls(base, tuple(sorted(versions, key=lambda v: v[0])))

    def at(self, moment: datetime) -> ScorecardDocument:
        """The card in force at ``moment``."""
        index = bisect.bisect_right(self._instants, moment)
        return self.versions[index - 1][1] if index else self.base

    def next_change_after(self, moment: datetime) -> datetime | None:
        """The first instant after ``moment`` at which another card takes effect."""
        index = bisect.bisect_right(self._instants, moment)
        return self._instants[index] if index < len(self._instants) else None

    def effective_instants(self) -> tuple[datetime, ...]:
        """Every instant a card takes effect, ascending."""
        return self._instants


def merged_edges(*edge_maps: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, ...]]:
    """Several ``feature_edges`` maps (a policy's and its card's) as one, per feature: the
    values where time alone (decay, history length) can change an answer."""
    merged: dict[str, set[float]] = {}
    for edges in edge_maps:
        for feature, values in edges.items():
            merged.setdefault(feature, set()).update(values)
    return {feature: tuple(sorted(values)) for feature, values in merged.items()}
