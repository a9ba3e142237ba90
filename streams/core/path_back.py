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
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from streams.core.features import SCORE_MAX, SCORE_MIN, derive_features
from streams.core.good_behaviour import future_scores
from streams.core.labels import add_months
from streams.core.policy import Text
from streams.core.scorecard import Characteristic, ScorecardDocument, Scored
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
def _action(c: Characteristic, target: int, values: dict[str, float | None]) -> Text | None:
    """What to do now to bring ``c`` into bin ``target`` (None: no action does that)."""
    low = c.bins[target - 1].below if target > 0 and not c.categorical else None
    high = c.bins[target].below if not c.categorical else None
    feature = c.feature
    if feature == "verified_assets" and low is not None:
        amount = _money(low - (values[feature] or 0.0))
        return Text(
            en=f"Verify assets (deposits, investments or property) worth {amount} more",
            zh=f"再验证价值{amount}元的资产（存款、投资或房产）",
        )
    if feature == "verified_monthly_income" and low is not None:
        declared = values["monthly_income"]
        if declared is not None and declared >= low and not values[feature]:
            return Text(en="Verify your declared income", zh="验证您已申报的收入")
        return Text(
            en=f"Verify a monthly income of at least {_money(low)}",
            zh=f"验证至少{_money(low)}元的月收入",
        )
    if feature == "income_verification_level":
        categories = c.bins[target].values
        level = categories[0] if categories else low
        if level is not None and level >= 2:
            return Text(en="Verify your income", zh="验证您的收入")
        return Text(en="Tell us your monthly income", zh="申报您的月收入")
    if feature in ("debt_to_income", "outstanding_debt"):
        debt = values["outstanding_debt"] or 0.0
        income = values["monthly_income"]
        if feature == "debt_to_income" and values[feature] is None:
            if high is None or debt <= 0:
                return Text(en="Tell us your monthly income", zh="申报您的月收入")
            needed = _money(debt / (12 * high) + 0.01)
            return Text(
                en=f"Tell us your monthly income (from {needed} a month, your debt-to-income "
                "scores these points)",
                zh=f"申报您的月收入（月收入达到{needed}元时，负债收入比可得此分数）",
            )
        if high is None:
            return None
        limit = high * 12 * float(income) if feature == "debt_to_income" and income else high
        amount = _money(debt - limit + 0.01)
        return Text(en=f"Pay down {amount} of your debt", zh=f"偿还{amount}元债务")
    return None


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


def _clamp(raw: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, raw))


def _time_moves(
    card: ScorecardDocument, scored: Scored, future: Sequence[Scored], months: int
) -> tuple[Move, ...]:
    """The characteristics that gain points over ``months`` months of good behaviour, each
    with the month it reaches its bin by then (``future``: the scoring after each month)."""
    moves = []
    final = future[months - 1]
    for name, c in card.characteristics.items():
        gain = final.points[name] - scored.points[name]
        to_bin = final.bins[name]
        if gain <= 0 or to_bin is None or c.feature not in _TIME_TEXTS:
            continue
        first = next(
            k
            for k, then in enumerate(future[:months], 1)
            if then.points[name] >= final.points[name]
        )
        moves.append(Move(name, to_bin, gain, first, "time", _TIME_TEXTS[c.feature](first)))
    return tuple(moves)


def path_back(
    card: ScorecardDocument,
    state: UserState,
    at: datetime,
    target: int,
    *,
    max_months: int = MAX_MONTHS,
    limit: int = 3,
) -> PathBack:
    """Ways for the user of ``state`` (at ``at``) to reach ``target`` under ``card``: up to
    ``limit`` paths (see the module docstring), the quickest good-behaviour path among them
    whenever there is one."""
    features = derive_features(state, at)
    values = features.values()
    scored = card.evaluate(values)
    raw = card.base_points + sum(scored.points.values())
    # Each month's scoring, computed once, up to the month good behaviour alone reaches the
    # target (the paths below never look further): the months after it cost nothing.
    future: list[Scored] = []
    future_raw: list[int] = []
    good: int | None = None
    for then in future_scores(card, state, at, max_months):
        future.append(then)
        future_raw.append(card.base_points + sum(then.points.values()))
        if _clamp(future_raw[-1]) >= target:
            good = len(future)
            break
    actions: list[Move] = []
    for name, c in card.characteristics.items():
        current = scored.points[name]
        for target_bin, better in enumerate(c.bins):
            if better.points > current:
                text = _action(c, target_bin, values)
                if text is not None:
                    gain = better.points - current
                    actions.append(Move(name, target_bin, gain, 0, "action", text))
    order = {name: i for i, name in enumerate(card.characteristics)}

    def bins_moved(moves: tuple[Move, ...]) -> int:
        total = 0
        for m in moves:
            index = scored.bins[m.characteristic]
            total += abs(m.to_bin - index) if index is not None else 1
        return total

    timed: dict[int, tuple[Move, ...]] = {}

    def time_moves(months: int) -> tuple[Move, ...]:
        # The same months give the same time moves, whichever action goes with them.
        if months not in timed:
            timed[months] = _time_moves(card, scored, future, months)
        return timed[months]

    candidates: list[Path] = []
    # One or two actions, now.
    enough = {m.characteristic for m in actions if raw + m.points >= target}
    for m in actions:
        if raw + m.points >= target:
            candidates.append(Path((m,), _clamp(raw + m.points)))
    for a, b in itertools.combinations(actions, 2):
        if a.characteristic == b.characteristic or {a.characteristic, b.characteristic} & enough:
            continue  # the same characteristic twice, or one alone suffices
        if raw + a.points + b.points >= target:
            pair = tuple(sorted((a, b), key=lambda m: order[m.characteristic]))
            candidates.append(Path(pair, _clamp(raw + a.points + b.points)))
    # Good behaviour alone, then one action and fewer months of it.
    if good is not None:
        candidates.append(
            Path(
                time_moves(good),
                _clamp(future_raw[good - 1]),
            )
        )
    for m in actions:
        if m.characteristic in enough:
            continue
        c = card.characteristics[m.characteristic]
        for k, (then, r) in enumerate(zip(future, future_raw, strict=True), 1):
            if good is not None and k >= good:
                break
            gain = c.bins[m.to_bin].points - then.points[m.characteristic]
            if gain > 0 and r + gain >= target:
                moves = (m, *(t for t in time_moves(k) if t.characteristic != m.characteristic))
                candidates.append(Path(moves, _clamp(r + gain)))
                break

    def effort(p: Path) -> tuple[int, int, int, int, list[int]]:
        things = sum(1 for m in p.moves if m.kind == "action") + (1 if p.months else 0)
        return (
            things,
            p.months,
            bins_moved(p.moves),
            -p.score,
            [order[m.characteristic] for m in p.moves],
        )

    candidates = [p for p in candidates if p.moves]
    candidates.sort(key=effort)
    distinct: dict[tuple[frozenset[str], int], Path] = {}
    for p in candidates:
        # The same characteristics after the same months: only the smallest moves count.
        actions_of = frozenset(m.characteristic for m in p.moves if m.kind == "action")
        distinct.setdefault((actions_of, p.months), p)
    candidates = list(distinct.values())
    chosen = candidates[:limit]
    timed_paths = [p for p in candidates if all(m.kind == "time" for m in p.moves)]
    if timed_paths and timed_paths[0] not in chosen and chosen:
        chosen[-1] = timed_paths[0]  # always show what good behaviour alone does
    return PathBack(
        scorecard_version=card.version,
        score=scored.score,
        target=target,
        paths=[] if scored.score >= target else chosen,
        good_behaviour_months=good,
    )
