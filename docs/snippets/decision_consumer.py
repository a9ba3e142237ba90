"""An idempotent consumer of creditline's decisions and line-status events (aiokafka).

* Decisions are matched to requests by ``request_id``. creditline answers a redelivered
  request again, byte for byte, so one request_id can arrive more than once: the first is acted
  on, later identical ones are recognised and skipped. (Another body for a known request_id
  cannot come from creditline: it dead-letters a reused request_id with another request as
  CONFLICTING_REQUEST_ID. It is reported, not acted on.)
* Line-status events are applied in the order they arrive for a user (one user, one partition),
  not sorted by ``changed_at``: a restatement (first reason LATE_EVENT_RESTATED) replaces what
  was announced before it, and its ``changed_at`` may be earlier than theirs.
* What was done is stored (SQLite here) before the Kafka offsets are committed: after a crash
  between the two, records are read again and the checks above absorb them.
"""

import asyncio
import hashlib
import json
import os
import sqlite3
import time

from aiokafka import AIOKafkaConsumer

BOOTSTRAP = os.environ.get("CREDITLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
DECISIONS = os.environ.get("CREDITLINE_TOPIC_LOAN_DECISIONS", "credit.loan-decisions")
LINE_STATUS = os.environ.get("CREDITLINE_TOPIC_LINE_STATUS", "credit.line-status")
GROUP_ID = os.environ.get("GROUP_ID", "my-service-decisions")
STATE_DB = os.environ.get("STATE_DB", "decisions.sqlite3")
IDLE_EXIT_SECONDS = float(os.environ.get("IDLE_EXIT_SECONDS", "0"))  # 0: run for ever


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def on_decision(db: sqlite3.Connection, value: bytes) -> None:
    decision = json.loads(value)
    request_id = decision["request_id"]
    digest = hashlib.sha256(value).hexdigest()
    seen = db.execute("SELECT digest FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
    if seen is not None:
        kind = "duplicate" if seen[0] == digest else "conflict"
        report(action=kind, request_id=request_id)
        return
    db.execute("INSERT INTO decisions VALUES (?, ?)", (request_id, digest))
    # Act once: tell the user, book the loan... Money is a decimal string: keep it exact.
    report(
        action="decision",
        request_id=request_id,
        outcome=decision["outcome"],
        approved_amount=decision["approved_amount"],
        codes=[reason["code"] for reason in decision["reasons"]],
        evaluated_at=decision.get("evaluated_at"),  # the instant it was judged at (or null)
        status_since=decision.get("status_since"),  # since when the live status has held
    )


def on_status(db: sqlite3.Connection, value: bytes) -> None:
    event = json.loads(value)
    restated = bool(event["reasons"]) and event["reasons"][0]["code"] == "LATE_EVENT_RESTATED"
    # Arrival order, not changed_at order: the newest event is the truth, restatements too.
    db.execute(
        "INSERT INTO line_status VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE "
        "SET status = excluded.status, since = excluded.since",
        (event["user_id"], event["status"], event["changed_at"]),
    )
    report(
        action="status",
        user_id=event["user_id"],
        status=event["status"],
        since=event["changed_at"],
        restated=restated,
    )


async def main() -> None:
    db = sqlite3.connect(STATE_DB)
    db.execute("CREATE TABLE IF NOT EXISTS decisions (request_id TEXT PRIMARY KEY, digest TEXT)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS line_status (user_id TEXT PRIMARY KEY, status TEXT, since TEXT)"
    )
    consumer = AIOKafkaConsumer(
        DECISIONS,
        LINE_STATUS,
        bootstrap_servers=BOOTSTRAP,
        group_id=GROUP_ID,
        enable_auto_commit=False,  # commit only what is stored
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        last_record = time.monotonic()
        while not IDLE_EXIT_SECONDS or time.monotonic() - last_record < IDLE_EXIT_SECONDS:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                continue
            for partition, records in batch.items():
                for record in records:
                    handle = on_decision if partition.topic == DECISIONS else on_status
                    handle(db, record.value)
            db.commit()  # first what was done...
            await consumer.commit()  # ...then how far we read
            last_record = time.monotonic()
    finally:
        await consumer.stop()
        db.close()


asyncio.run(main())
