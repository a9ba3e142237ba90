"""A path back: the smallest behaviour changes that would bring a declined or closed user to a
target score under a scorecard. Pure.

A small, explainable search: every **move** takes one characteristic to a better bin, either

* by an **action** the user can take now — verify assets, verify (or declare) income, pay
  down debt — with the amount needed read from the bin edge; or
* with **time and good behaviour** — the months after which the characteristic reaches the
  bin if every instalment is paid on time and the account is used each month, computed by
  folding exactly those events into the user's state (:mod:`streams.core.good_behaviour`)
  and deriving the features then: decay, the 12-month window and the history length move
  as they would in the worker.

Paths of one move, then of two moves on different characteristics, are kept when they reach
the target; fewer moves, fewer months, fewer bins first. A path's score counts only the
points of its own moves (other characteristics never lose points under good behaviour, so
it is a lower bound). Honest about time: :func:`time_alone` is the score after 3, 6 and 12
months *without any event* (on-time repayments decay too), and
:attr:`PathBack.good_behaviour_months` when good behaviour alone gets there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

from streams.core.features import SCORE_MAX, SCORE_MIN, Features, derive_features
from streams.core.good_behaviour import future_bins
from streams.core.labels import add_months
from streams.core.path_texts import TIME_TEXTS, Say, action_text, good_behaviour_text
from streams.core.policy import Text
from streams.core.scorecard import ScorecardDocument, Scored
from streams.core.state import UserState

MoveKind = Literal["action", "time"]
#: How far ahead good behaviour is simulated.
MAX_MONTHS = 24
#: The "time alone" horizons reported.
TIME_ALONE_MONTHS = (3, 6, 12)


@dataclass(frozen=True, slots=True)
class Move:
    """One characteristic to a better bin: how many points it gains, after how many months
    of good behaviour (0: an action possible now), and what to do."""

    characteristic: str
    to_bin: int
    points: int
    months: int
    kind: MoveKind
    text: Text


@dataclass(frozen=True, slots=True)
class Path:
    """Moves that together reach the target; ``score`` counts only their points."""

    moves: tuple[Move, ...]
    score: int

    @property
    def months(self) -> int:
        """Months until every move is done."""
        return max(m.months for m in self.moves)

    @property
    def text(self) -> Text:
        """What to do, in one sentence per language: the actions, then the months of good
        behaviour (the time moves say which characteristics those months improve)."""
        parts = [m.text for m in self.moves if m.kind == "action"]
        if self.months:
            parts.append(good_behaviour_text(self.months))
        en = "; ".join(p.en if i == 0 else p.en[0].lower() + p.en[1:] for i, p in enumerate(parts))
        return Text(en=en, zh="；".join(p.zh for p in parts))


@dataclass(frozen=True, slots=True)
class PathBack:
    """Where a user stands against a target score, and ways back to it."""

    scorecard_version: str
    score: int
    target: int
    paths: list[Path]
    #: Months of on-time repayment and account use after which the score alone reaches the
    #: target (None: not within :data:`MAX_MONTHS`).
    good_behaviour_months: int | None

    @property
    def reached(self) -> bool:
        """Whether the score already meets the target."""
        return self.score >= self.target


def time_alone(card: ScorecardDocument, state: UserState, at: datetime) -> list[tuple[int, int]]:
    """(months from ``at``, score) after 3, 6 and 12 months with no event at all in between:
    on-time repayments decay too. Apart from :func:`path_back`, which a loan request's answer
    computes and which does not need it."""
    return [
        (k, card.evaluate(derive_features(state, add_months(at, k))).score)
        for k in TIME_ALONE_MONTHS
    ]


def _scored_now(card: ScorecardDocument, state: UserState, at: datetime) -> tuple[Features, Scored]:
    features = derive_features(state, at)
    return features, card.evaluate(features.values())


def _clamp(raw: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, raw))


@dataclass(frozen=True, slots=True)
class _Step:
    """A move while the paths are searched: the characteristic by its place in the card, and
    its text written only if a chosen path takes it (the same characteristic, bin, points and
    months always say the same)."""

    index: int
    to_bin: int
    points: int
    months: int
    kind: MoveKind
    #: Bins it moves the characteristic by (1 from the missing bin): fewer rank first.
    moved: int
    say: Say = field(compare=False)


#: A path while the paths are searched: its steps and the score they reach.
_Found = tuple[tuple[_Step, ...], int]
#: How much a path asks (see :func:`_ranked`): less first.
_Effort = tuple[int, int, int, int, list[int]]


def _ranked(candidates: list[_Found]) -> list[_Found]:
    """The paths found, least effort first, one per set of actions and months of good
    behaviour (the same characteristics after the same months: only the smallest moves
    count). Effort ranks fewer things to do (each action, and the months of good behaviour
    if any), then fewer months, then fewer bins moved, then the higher score, then the
    characteristics in the card's order."""
    keyed = []
    for steps, score in candidates:
        if not steps:
            continue
        months = moved = 0
        actions = []
        for step in steps:
            if step.months > months:
                months = step.months
            moved += step.moved
            if step.kind == "action":
                actions.append(step.index)
        effort = (
            len(actions) + (1 if months else 0),
            months,
            moved,
            -score,
            [step.index for step in steps],
        )
        keyed.append((effort, (frozenset(actions), months), (steps, score)))
    keyed.sort(key=_effort)
    distinct: dict[tuple[frozenset[int], int], _Found] = {}
    for _, same, found in keyed:
        distinct.setdefault(same, found)
    return list(distinct.values())


def _bins_moved(now: int | None, to: int) -> int:
    return 1 if now is None else abs(to - now)


def _effort(keyed: tuple[_Effort, object, _Found]) -> _Effort:
    return keyed[0]


def path_back(
    card: ScorecardDocument,
    state: UserState,
    at: datetime,
    target: int,
    *,
    max_months: int = MAX_MONTHS,
    limit: int = 3,
    now: tuple[Features, Scored] | None = None,
) -> PathBack:
    """Ways for the user of ``state`` (at ``at``) to reach ``target`` under ``card``: up to
    ``limit`` paths (see the module docstring), the quickest good-behaviour path among them
    whenever there is one. ``now``: the user's features at ``at`` and their score under
    ``card``, when the caller has them (a decision's assessment does); derived otherwise."""
    features, scored = now if now is not None else _scored_now(card, state, at)
    values = features.values()
    names = list(card.characteristics)
    rows = card.scoring_rows
    # Points and bins by the characteristic's place in the card: the search compares them
    # for every month and action (a declined request's answer waits for it).
    points_now = tuple(scored.points.values())
    bins_now = tuple(scored.bins.values())
    raw = card.base_points + sum(points_now)
    # Each month's points, computed once, up to the month good behaviour alone reaches the
    # target (the paths below never look further): the months after it cost nothing.
    future: list[list[int]] = []
    future_bins_of: list[Sequence[int | None]] = []
    future_raw: list[int] = []
    good: int | None = None
    for bins in future_bins(card, state, at, max_months):
        points = card.points_at(bins)
        future.append(points)
        future_bins_of.append(bins)
        future_raw.append(card.base_points + sum(points))
        if _clamp(future_raw[-1]) >= target:
            good = len(future)
            break
    if scored.score >= target:
        return PathBack(card.version, scored.score, target, [], good)
    actions: list[_Step] = []
    for i, c in enumerate(card.characteristics.values()):
        current, now_bin = points_now[i], bins_now[i]
        for target_bin, better in enumerate(rows[i][2]):
            if better > current:
                say = action_text(c, target_bin, values)
                if say is not None:
                    moved = _bins_moved(now_bin, target_bin)
                    actions.append(_Step(i, target_bin, better - current, 0, "action", moved, say))

    # Each characteristic's points month by month (a column a characteristic).
    columns = list(zip(*future, strict=True))
    timed: dict[int, tuple[_Step, ...]] = {}

    def time_moves(months: int) -> tuple[_Step, ...]:
        """The characteristics that gain points over ``months`` months of good behaviour,
        each with the month it reaches its bin by then (the same months give the same time
        moves, whichever action goes with them)."""
        if months not in timed:
            final, final_bins = future[months - 1], future_bins_of[months - 1]
            moves = []
            for i, c in enumerate(card.characteristics.values()):
                gain = final[i] - points_now[i]
                to_bin = final_bins[i]
                if gain <= 0 or to_bin is None or c.feature not in TIME_TEXTS:
                    continue
                first = next(k for k, then in enumerate(columns[i], 1) if then >= final[i])
                say = partial(TIME_TEXTS[c.feature], first)
                moved = _bins_moved(bins_now[i], to_bin)
                moves.append(_Step(i, to_bin, gain, first, "time", moved, say))
            timed[months] = tuple(moves)
        return timed[months]

    candidates: list[_Found] = []
    # One or two actions, now.
    enough = {m.index for m in actions if raw + m.points >= target}
    for m in actions:
        if raw + m.points >= target:
            candidates.append(((m,), _clamp(raw + m.points)))
    # Pairs on characteristics none of which suffices alone (in the card's order, as the
    # actions are listed), never the same characteristic twice.
    pairable = [m for m in actions if m.index not in enough]
    for a, b in itertools.combinations(pairable, 2):
        if a.index != b.index and raw + a.points + b.points >= target:
            candidates.append(((a, b), _clamp(raw + a.points + b.points)))
    # Good behaviour alone, then one action and fewer months of it.
    if good is not None:
        candidates.append((time_moves(good), _clamp(future_raw[good - 1])))
    horizon = len(future) - 1 if good is not None else len(future)
    for m in pairable if horizon else ():
        best = rows[m.index][2][m.to_bin]
        column, needed = columns[m.index], target - best
        for k in range(horizon):
            # The action gains over the points after k + 1 months, and with them reaches
            # the target.
            then = column[k]
            if then < best and future_raw[k] - then >= needed:
                moves = (m, *(t for t in time_moves(k + 1) if t.index != m.index))
                candidates.append((moves, _clamp(future_raw[k] - then + best)))
                break

    candidates = _ranked(candidates)
    chosen = candidates[:limit]
    timed_paths = [found for found in candidates if all(m.kind == "time" for m in found[0])]
    if timed_paths and timed_paths[0] not in chosen and chosen:
        chosen[-1] = timed_paths[0]  # always show what good behaviour alone does
    paths = [
        Path(
            tuple(
                Move(names[m.index], m.to_bin, m.points, m.months, m.kind, m.say()) for m in steps
            ),
            score,
        )
        for steps, score in chosen
    ]
    return PathBack(card.version, scored.score, target, paths, good)
