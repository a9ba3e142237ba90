"""The consistency rules of a scorecard's characteristics and names (listed in
:mod:`streams.core.scorecard`); the document's validators call them."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.core.scorecard.document import Characteristic

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
#: Shares stored in a document are rounded; they must still add up to one within this.
SHARE_TOLERANCE = 0.01


def characteristic_problems(c: Characteristic) -> list[str]:
    """Everything wrong with one characteristic (empty when it is usable)."""
    problems: list[str] = []
    numeric = [b.values is None for b in c.bins]
    if any(numeric) and not all(numeric):
        return ["bins mix numeric 'below' bounds and categorical 'values'"]
    if all(numeric):
        bounds = [b.below for b in c.bins]
        if bounds[-1] is not None:
            problems.append("the last bin must have no 'below' bound (bins must cover the line)")
        if any(b is None for b in bounds[:-1]):
            problems.append("only the last bin may omit 'below'")
        inner = [b for b in bounds[:-1] if b is not None]
        if any(not math.isfinite(b) for b in inner):
            problems.append("'below' bounds must be finite")
        elif any(a >= b for a, b in itertools.pairwise(inner)):
            problems.append("'below' bounds must strictly increase")
    else:
        if any(b.below is not None for b in c.bins):
            problems.append("categorical bins take 'values', not 'below'")
        seen: set[float] = set()
        for b in c.bins:
            values = set(b.values or ())
            if values & seen:
                problems.append(f"categories {sorted(values & seen)} are in more than one bin")
            seen |= values
        if c.direction != "none":
            ordered = all(
                max(a.values or ()) < min(b.values or ())
                for a, b in zip(c.bins, c.bins[1:], strict=False)
            )
            if not ordered:
                problems.append(
                    "a direction on categories needs bins listed in increasing order of values"
                )
    points = [b.points for b in c.bins]
    if c.direction == "higher_is_better" and points != sorted(points):
        problems.append(f"points {points} decrease although higher_is_better")
    if c.direction == "lower_is_better" and points != sorted(points, reverse=True):
        problems.append(f"points {points} increase although lower_is_better")
    if c.missing.points > min(points) and c.missing.override is None:
        problems.append(
            f"the missing bin scores {c.missing.points}, above the worst bin ({min(points)}): "
            "withholding information must not pay (document a 'missing.override' to allow it)"
        )
    shares = [b.share for b in c.bins] + [c.missing.share]
    if any(s is not None for s in shares):
        if any(s is None for s in shares):
            problems.append("either every bin (and the missing bin) has a 'share' or none")
        elif abs(sum(s for s in shares if s is not None) - 1) > SHARE_TOLERANCE:
            problems.append(f"bin shares add up to {sum(s for s in shares if s):.4f}, not 1")
    return problems


def name_problems(characteristics: Mapping[str, Any]) -> list[str]:
    """Characteristic names that are not snake_case, and features scored twice."""
    problems = [
        f"characteristic name {name!r} must be snake_case"
        for name in characteristics
        if not _NAME.match(str(name))
    ]
    features = [c.get("feature") for c in characteristics.values() if isinstance(c, dict)]
    doubled = sorted({str(f) for f in features if features.count(f) > 1})
    if doubled:
        problems.append(f"features scored twice (double counting): {doubled}")
    return problems
