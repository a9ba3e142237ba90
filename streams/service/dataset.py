"""Labelled histories from what the system saw: ``creditline scorecard dataset``.

Observation points are the decisions creditline published (each at the instant it was
judged at, ``evaluated_at``) or every month start; a point's label is whether the user reached
``bad_dpd`` days past due within the performance window after it. Points whose window has not
ended by the latest event are immature and left out (:func:`streams.core.labels.label_points`).
The events written are the users' whole histories: a dataset reader computes each point's
features from the events at or before it only (point in time), so nothing after a point leaks
into it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from streams.core.decoding import DecodeLimits
from streams.core.labels import LabelledSet, Outcome, label_points
from streams.ports import TopicReader
from streams.service.logs import Progress, read_decisions, read_events
from streams.topics import Topics

Points = Literal["decisions", "monthly"]


async def labelled_from_logs(
    reader: TopicReader,
    topics: Topics,
    limits: DecodeLimits,
    outcome: Outcome,
    points: Points = "decisions",
    *,
    observed_until: datetime | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> LabelledSet:
    """Every labelled observation point the logs support (see the module docstring)."""
    progress = Progress(on_progress)
    events = await read_events(reader, topics, limits, None, progress)
    history = [event for by_id in events.values() for event, _ in by_id.values()]
    if points == "monthly":
        return label_points(history, observed_until=observed_until, outcome=outcome)
    user_points: dict[str, list[datetime]] = defaultdict(list)
    for decision in (await read_decisions(reader, topics, None, progress)).values():
        if decision.evaluated_at is not None and decision.score_as_of is not None:
            user_points[decision.user_id].append(decision.evaluated_at)
    return label_points(
        history, observed_until=observed_until, outcome=outcome, user_points=user_points
    )
