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
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

from streams.core.features import SCORE_MAX, SCORE_MIN, Features, derive_features
from streams.core.good_behaviour import future_bins
from streams.core.labels import add_months
from streams.core.policy import Text
from streams.core.scorecard import Characteristic, ScorecardDocument, Scored
from streams.core.state import UserState

MoveKind = Literal["action", "time"]
#: Writes a move's text (in both languages) when a chosen path shows it.
Say = Callable[[], Text]
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


def good_behaviour_text(months: int) -> Text:
    """The behaviour the time moves assume, for ``months`` months."""
    en, zh = _months(months)
    return Text(
        en=f"Repay every instalment on time and use your account each month for {en}",
        zh=f"未来{zh}每期按时还款并每月使用账户",
    )


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


NOTE = Text(
    en="Points shown are what the named changes add under the current scorecard; time alone, "
    "without repayments, lowers the weight of past on-time repayments too.",
    zh="所示分数为上述变化在当前评分卡下增加的分数；若无新的还款，仅靠时间推移，过去按时还款的权重也会降低。",
)


def _money(amount: float) -> str:
    return f"{math.ceil(max(amount, 0.0)):,}"


def _months(k: int) -> tuple[str, str]:
    return (f"{k} more month" + ("s" if k != 1 else ""), f"{k}个月")


# ---- actions: what a user can do now ----------------------------------------------------------
def _action(c: Characteristic, target: int, values: dict[str, float | None]) -> Say | None:
    """What to do now to bring ``c`` into bin ``target``, written when asked (a search weighs
    about twenty actions and shows a few); None: no action does that."""
    low = c.bins[target - 1].below if target > 0 and not c.categorical else None
    high = c.bins[target].below if not c.categorical else None
    feature = c.feature
    if feature == "verified_assets" and low is not None:
        return partial(_verify_assets, low - (values[feature] or 0.0))
    if feature == "verified_monthly_income" and low is not None:
        return partial(_verify_income, low, values["monthly_income"], values[feature])
    if feature == "income_verification_level":
        categories = c.bins[target].values
        return partial(_income_level, categories[0] if categories else low)
    if feature in ("debt_to_income", "outstanding_debt"):
        debt = values["outstanding_debt"] or 0.0
        income = values["monthly_income"]
        if feature == "debt_to_income" and values[feature] is None:
            return partial(_declare_income, debt, high)
        if high is None:
            return None
        limit = high * 12 * float(income) if feature == "debt_to_income" and income else high
        return partial(_pay_down, debt - limit + 0.01)
    return None


def _verify_assets(amount: float) -> Text:
    worth = _money(amount)
    return Text(
        en=f"Verify assets (deposits, investments or property) worth {worth} more",
        zh=f"再验证价值{worth}元的资产（存款、投资或房产）",
    )


def _verify_income(low: float, declared: float | None, verified: float | None) -> Text:
    if declared is not None and declared >= low and not verified:
        return Text(en="Verify your declared income", zh="验证您已申报的收入")
    return Text(
        en=f"Verify a monthly income of at least {_money(low)}",
        zh=f"验证至少{_money(low)}元的月收入",
    )


def _income_level(level: float | None) -> Text:
    if level is not None and level >= 2:
        return Text(en="Verify your income", zh="验证您的收入")
    return Text(en="Tell us your monthly income", zh="申报您的月收入")


def _declare_income(debt: float, high: float | None) -> Text:
    if high is None or debt <= 0:
        return Text(en="Tell us your monthly income", zh="申报您的月收入")
    needed = _money(debt / (12 * high) + 0.01)
    return Text(
        en=f"Tell us your monthly income (from {needed} a month, your debt-to-income "
        "scores these points)",
        zh=f"申报您的月收入（月收入达到{needed}元时，负债收入比可得此分数）",
    )


def _pay_down(amount: float) -> Text:
    return Text(en=f"Pay down {_money(amount)} of your debt", zh=f"偿还{_money(amount)}元债务")


# ---- time: what months of good behaviour do ---------------------------------------------------
_TIME_TEXTS: dict[str, Callable[[int], Text]] = {
    "worst_days_past_due_12m": lambda k: Text(
        en=f"No days past due for {_months(k)[0]}", zh=f"未来{_months(k)[1]}内不再逾期"
    ),
    "missed_repayments": lambda k: Text(
        en=f"Repay in full for {_months(k)[0]} (missed repayments weigh less as they age)",
        zh=f"未来{_months(k)[1]}足额还款（未还记录的权重随时间降低）",
    ),
    "late_repayments": lambda k: Text(
        en=f"Repay on time for {_months(k)[0]} (late repayments weigh less as they age)",
        zh=f"未来{_months(k)[1]}按时还款（逾期记录的权重随时间降低）",
    ),
    "on_time_repayments": lambda k: Text(
        en=f"Keep repaying on time for {_months(k)[0]}", zh=f"未来{_months(k)[1]}继续按时还款"
    ),
    "history_months": lambda k: Text(
        en=f"A longer history: {_months(k)[0]}", zh=f"信用历史再积累{_months(k)[1]}"
    ),
    "active_spend_months_6m": lambda k: Text(
        en=f"Use your account each month for {_months(k)[0]}",
        zh=f"未来{_months(k)[1]}每月使用账户消费",
    ),
}


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
    say: Say = field(compare=False)


#: A path while the paths are searched: its steps and the score they reach.
_Found = tuple[tuple[_Step, ...], int]


def _months_of(steps: tuple[_Step, ...]) -> int:
    return max(s.months for s in steps)


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
        current = points_now[i]
        for target_bin, better in enumerate(rows[i][2]):
            if better > current:
                say = _action(c, target_bin, values)
                if say is not None:
                    actions.append(_Step(i, target_bin, better - current, 0, "action", say))

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
                if gain <= 0 or to_bin is None or c.feature not in _TIME_TEXTS:
                    continue
                first = next(k for k, then in enumerate(future, 1) if then[i] >= final[i])
                say = partial(_TIME_TEXTS[c.feature], first)
                moves.append(_Step(i, to_bin, gain, first, "time", say))
            timed[months] = tuple(moves)
        return timed[months]

    candidates: list[_Found] = []
    # One or two actions, now.
    enough = {m.index for m in actions if raw + m.points >= target}
    for m in actions:
        if raw + m.points >= target:
            candidates.append(((m,), _clamp(raw + m.points)))
    for a, b in itertools.combinations(actions, 2):
        # Actions are listed in the card's order, so each pair already is too.
        if a.index == b.index or a.index in enough or b.index in enough:
            continue  # the same characteristic twice, or one alone suffices
        if raw + a.points + b.points >= target:
            candidates.append(((a, b), _clamp(raw + a.points + b.points)))
    # Good behaviour alone, then one action and fewer months of it.
    if good is not None:
        candidates.append((time_moves(good), _clamp(future_raw[good - 1])))
    for m in actions:
        if m.index in enough:
            continue
        best = rows[m.index][2][m.to_bin]
        for k, (then, r) in enumerate(zip(future, future_raw, strict=True), 1):
            if good is not None and k >= good:
                break
            gain = best - then[m.index]
            if gain > 0 and r + gain >= target:
                moves = (m, *(t for t in time_moves(k) if t.index != m.index))
                candidates.append((moves, _clamp(r + gain)))
                break

    def effort(found: _Found) -> tuple[int, int, int, int, list[int]]:
        steps, score = found
        months = _months_of(steps)
        things = sum(1 for m in steps if m.kind == "action") + (1 if months else 0)
        moved = sum(
            abs(m.to_bin - index) if (index := bins_now[m.index]) is not None else 1 for m in steps
        )
        return (things, months, moved, -score, [m.index for m in steps])

    candidates = [found for found in candidates if found[0]]
    candidates.sort(key=effort)
    distinct: dict[tuple[frozenset[int], int], _Found] = {}
    for found in candidates:
        # The same characteristics after the same months: only the smallest moves count.
        steps = found[0]
        actions_of = frozenset(m.index for m in steps if m.kind == "action")
        distinct.setdefault((actions_of, _months_of(steps)), found)
    candidates = list(distinct.values())
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
