"""Checkpoints for tests: the status machine run over a few events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from schemas.models import InputEvent
from streams.core.policy import load_default_policy
from streams.core.scoring import Assessment
from streams.core.timeline import (
    Checkpoint,
    PolicyTimeline,
    advance,
    canonical,
    constant,
    standing,
)

HORIZON = timedelta(days=1826)


def checkpoint_of(events: Sequence[InputEvent], until: datetime | None = None) -> Checkpoint:
    """The reference checkpoint of one user's events under the default policy."""
    ordered = canonical(events)
    moment = until or max(e.occurred_at for e in ordered)
    return advance(ordered, constant(load_default_policy()), moment, HORIZON)


def default_timelines() -> PolicyTimeline:
    """The default policy and scorecard, in force at every instant."""
    return constant(load_default_policy())


def standing_of(checkpoint: Checkpoint) -> Assessment | None:
    """The standing at a checkpoint under the default policy (what the summary shows)."""
    return standing(checkpoint, default_timelines())
