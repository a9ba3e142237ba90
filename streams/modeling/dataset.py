"""Labelled datasets on disk and in memory.

* events: JSON Lines, one ``{"topic": "credit.repayments" | "credit.spending" |
  "credit.assets", "value": <the event exactly as on the wire>}`` per line;
* labels: CSV ``user_id,as_of,bad`` (``as_of`` RFC 3339 with an offset, ``bad`` 0 or 1);
* a :class:`Dataset`: each label with the point-in-time :class:`Features` of its user at
  ``as_of`` (:func:`streams.core.labels.point_in_time_features`, the worker's own fold).

Needs only the runtime dependencies.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import TypeAdapter

from schemas.models import AssetEvent, InputEvent, RepaymentEvent, SpendingEvent, Timestamp
from streams.core.features import Features
from streams.core.labels import DEFAULT_HORIZON, Label, point_in_time_features

#: The default topic names (``CREDITLINE_TOPIC_*``) and what each carries.
TOPIC_MODELS: dict[str, type[InputEvent]] = {
    "credit.repayments": RepaymentEvent,
    "credit.spending": SpendingEvent,
    "credit.assets": AssetEvent,
}
_TOPIC_OF = {model: topic for topic, model in TOPIC_MODELS.items()}
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """Labelled rows with their point-in-time features."""

    labels: list[Label]
    features: list[Features]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.features):
            raise ValueError("labels and features differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def bad(self) -> list[int]:
        """The outcomes, 1 bad, 0 good."""
        return [label.bad for label in self.labels]

    @property
    def bad_rate(self) -> float:
        """Share of bad rows."""
        return sum(self.bad) / len(self) if self.labels else 0.0

    def column(self, feature: str) -> list[float | None]:
        """One feature's values over the rows (None: unknown)."""
        return [f.values()[feature] for f in self.features]

    def values(self) -> list[dict[str, float | None]]:
        """Every row's feature values by name."""
        return [f.values() for f in self.features]


def build_dataset(
    events: Iterable[InputEvent], labels: Sequence[Label], horizon: timedelta = DEFAULT_HORIZON
) -> Dataset:
    """Point-in-time features for every label; labels whose user has no event in the window
    at ``as_of`` are left out (the worker would not score them either)."""
    features = point_in_time_features(events, labels, horizon)
    kept = [(label, f) for label, f in zip(labels, features, strict=True) if f is not None]
    return Dataset([label for label, _ in kept], [f for _, f in kept])


# ---- files -----------------------------------------------------------------------------------
def read_events(
    path: Path, topics: Mapping[str, type[InputEvent]] = TOPIC_MODELS
) -> list[InputEvent]:
    """Events from a JSON Lines file of ``{"topic", "value"}`` objects."""
    events: list[InputEvent] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, parse_float=Decimal)
                model = topics[record["topic"]]
                events.append(model.model_validate(record["value"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise DatasetError(f"{path}:{number}: not an event record ({exc})") from None
    return events


def write_events(path: Path, events: Iterable[InputEvent]) -> int:
    """Write events as JSON Lines of ``{"topic", "value"}``; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            value = event.model_dump_json()
            out.write(f'{{"topic": "{_TOPIC_OF[type(event)]}", "value": {value}}}\n')
            count += 1
    return count


def read_labels(path: Path) -> list[Label]:
    """Labels from a CSV file with the header ``user_id,as_of,bad``."""
    labels = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"user_id", "as_of", "bad"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: the header must name user_id, as_of and bad")
        for number, row in enumerate(reader, 2):
            try:
                bad = int(row["bad"])
                if bad not in (0, 1):
                    raise ValueError("bad must be 0 or 1")
                labels.append(Label(row["user_id"], _TIMESTAMP.validate_python(row["as_of"]), bad))
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: {exc}".splitlines()[0]) from None
    return labels


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    """Write labels as CSV ``user_id,as_of,bad``; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "as_of", "bad"])
        for label in labels:
            writer.writerow([label.user_id, label.as_of.isoformat(), label.bad])
            count += 1
    return count


def write_feature_table(path: Path, dataset: Dataset, features: Sequence[str]) -> int:
    """The dataset as CSV: ``user_id,as_of,bad`` and one column per feature (empty: unknown)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "as_of", "bad", *features])
        for label, row in zip(dataset.labels, dataset.values(), strict=True):
            cells = ["" if row[f] is None else repr(row[f]) for f in features]
            writer.writerow([label.user_id, label.as_of.isoformat(), label.bad, *cells])
    return len(dataset)


def load_dataset(
    events_path: Path, labels_path: Path, horizon: timedelta = DEFAULT_HORIZON
) -> Dataset:
    """Read events and labels and compute every label's point-in-time features."""
    return build_dataset(read_events(events_path), read_labels(labels_path), horizon)
