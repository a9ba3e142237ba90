"""What a path back says (:mod:`streams.core.path_back`), in English and Simplified Chinese:
the actions a user can take now, with the amount each needs read from the bin edge, and what
months of good behaviour do. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from streams.core.policy import Text
from streams.core.scorecard import Characteristic

#: Writes a move's text (in both languages) when a chosen path shows it.
Say = Callable[[], Text]


def good_behaviour_text(months: int) -> Text:
    """The behaviour the time moves assume, for ``months`` months."""
    en, zh = _months(months)
    return Text(
        en=f"Repay every instalment on time and use your account each month for {en}",
        zh=f"未来{zh}每期按时还款并每月使用账户",
    )


def _money(amount: float) -> str:
    return f"{math.ceil(max(amount, 0.0)):,}"


def _months(k: int) -> tuple[str, str]:
    return (f"{k} more month" + ("s" if k != 1 else ""), f"{k}个月")


def action_text(c: Characteristic, target: int, values: dict[str, float | None]) -> Say | None:
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


#: What good behaviour does to a feature, for the months it takes.
TIME_TEXTS: dict[str, Callable[[int], Text]] = {
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
