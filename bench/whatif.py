"""``python -m bench.whatif``: how fast what-if re-answers requests (both sides, each user's
machine carried from request to request) against the explain path in the same run (each
request re-derived from scratch, one side), in process: the core's cost, without Kafka.

Each user has ``--months`` months of history (a repayment a month, sometimes late, missed or
35 days past due; income and a deposit; some spending) and ``--requests`` requests in the
last 30 days of it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.models import (
    AssetEvent,
    AssetType,
    DisplayedStatus,
    InputEvent,
    LoanRequest,
    RepaymentEvent,
    SpendingEvent,
)
from streams.core.policy import load_default_policy, parse_policy
from streams.core.timeline import PolicyTimeline
from streams.core.whatif import candidate_timeline, compare_user, logged_request
from streams.service.explain import explain_one

END = datetime(2026, 11, 30, tzinfo=UTC)
HORIZON = timedelta(days=1826)


def history(user: str, months: int, rng: random.Random) -> list[InputEvent]:
    start = END - timedelta(days=30.4 * months)
    events: list[InputEvent] = [
        AssetEvent(
            event_id=f"{user}-inc",
            user_id=user,
            occurred_at=start,
            asset_type=AssetType.INCOME,
            value=Decimal(rng.randint(4, 20) * 1000),
            verified=rng.random() < 0.7,
        ),
        AssetEvent(
            event_id=f"{user}-dep",
            user_id=user,
            occurred_at=start + timedelta(days=3),
            asset_type=AssetType.DEPOSIT,
            value=Decimal(rng.choice((0, 20_000, 80_000))),
            verified=True,
        ),
    ]
    for month in range(months):
        roll = rng.random()
        dpd, paid = (
            (35, "0") if roll < 0.04 else (rng.randint(3, 20), "100") if roll < 0.2 else (0, "100")
        )
        events.append(
            RepaymentEvent(
                event_id=f"{user}-r{month}",
                user_id=user,
                occurred_at=start + timedelta(days=30.4 * month + rng.uniform(0, 5)),
                loan_id=f"{user}-loan",
                amount_due=Decimal("100"),
                amount_paid=Decimal(paid),
                days_past_due=dpd,
                outstanding_balance=Decimal(1000),
            )
        )
        if rng.random() < 0.5:
            events.append(
                SpendingEvent(
                    event_id=f"{user}-s{month}",
                    user_id=user,
                    occurred_at=start + timedelta(days=30.4 * month + rng.uniform(5, 25)),
                    amount=Decimal(rng.randint(100, 5000)),
                    category="groceries",
                )
            )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--months", type=int, default=36, help="history per user (≈1.5 events/month)"
    )
    parser.add_argument("--requests", type=int, default=5, help="requests per user")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    live = PolicyTimeline(load_default_policy())
    doc = load_default_policy().model_dump(mode="json", exclude_none=True)
    doc["version"] = "bench-candidate"
    doc["status"]["thresholds"] = {"close_below": 560, "reopen_at": 575}
    candidate = candidate_timeline(live, parse_policy(json.dumps(doc)))
    users = {f"b-{i:05d}": history(f"b-{i:05d}", args.months, rng) for i in range(args.users)}
    asks = {
        user: [
            logged_request(
                LoanRequest(
                    request_id=f"{user}-q{k}",
                    user_id=user,
                    requested_at=(at := END - timedelta(days=rng.uniform(0, 30))),
                    amount=Decimal(rng.randint(5, 50) * 100),
                    term_months=12,
                    displayed_status=DisplayedStatus.CLOSED,
                ),
                at + timedelta(seconds=1),
                timedelta(minutes=5),
            )
            for k in range(args.requests)
        ]
        for user in users
    }
    total = args.users * args.requests
    events = sum(len(e) for e in users.values())
    started = time.perf_counter()
    pairs = []
    for user, events_of in users.items():
        pairs += compare_user(asks[user], events_of, live, candidate, HORIZON, END)[0]
    what_if_seconds = time.perf_counter() - started
    by_id = {r.request.request_id: r for logged in asks.values() for r in logged}
    started = time.perf_counter()
    for p in pairs:
        logged = by_id[p.request_id]
        logged_events = [(e, e.occurred_at.timestamp()) for e in users[p.user_id]]
        explained = explain_one(p.live, logged.request, logged_events, live, HORIZON)
        assert explained.matches, explained.differences
    explain_seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "users": args.users,
                "requests": total,
                "events_per_user": round(events / args.users, 1),
                "flipped": sum(p.flipped for p in pairs),
                "what_if_seconds": round(what_if_seconds, 2),
                "what_if_requests_per_s_both_sides": round(total / what_if_seconds, 1),
                "explain_seconds_one_side": round(explain_seconds, 2),
                "explain_requests_per_s_one_side": round(total / explain_seconds, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
