"""First event with aiokafka: two asset events and a loan request, then its decision.

Every record is keyed by its user_id: a record whose key is not the user_id in its value is
dead-lettered KEY_MISMATCH and never scored.
"""

import asyncio
import json
import os
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

BOOTSTRAP = os.environ.get("CREDITLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
ASSETS = os.environ.get("CREDITLINE_TOPIC_ASSETS", "credit.assets")
REQUESTS = os.environ.get("CREDITLINE_TOPIC_LOAN_REQUESTS", "credit.loan-requests")
DECISIONS = os.environ.get("CREDITLINE_TOPIC_LOAN_DECISIONS", "credit.loan-decisions")
USER_ID = os.environ.get("USER_ID", "u-42")
RUN_ID = os.environ.get("RUN_ID") or str(int(time.time()))  # unique ids per run


def now() -> str:
    return datetime.now(UTC).isoformat()  # RFC 3339 with an offset: 2026-11-28T08:00:00+00:00


async def main() -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key = USER_ID.encode()  # the key IS the user_id
        for kind, value in (("income", "12000.00"), ("deposit", "50000.00")):
            event = {
                "event_id": f"{USER_ID}.{kind}.{RUN_ID}",
                "user_id": USER_ID,
                "occurred_at": now(),
                "asset_type": kind,
                "value": value,  # money as a decimal string, never a float
                "verified": True,
            }
            await producer.send_and_wait(ASSETS, json.dumps(event).encode(), key=key)
        await asyncio.sleep(2)  # events are folded within ~100 ms; don't outrun them
        request_id = f"{USER_ID}.loan.{RUN_ID}"
        request = {
            "request_id": request_id,
            "user_id": USER_ID,
            "requested_at": now(),
            "amount": "3000.00",
            "term_months": 12,
            "displayed_status": "closed",
        }
        await producer.send_and_wait(REQUESTS, json.dumps(request).encode(), key=key)
    finally:
        await producer.stop()

    # No group: read every partition of the decisions topic from the start.
    consumer = AIOKafkaConsumer(
        DECISIONS, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            async for record in consumer:
                decision = json.loads(record.value)
                if decision["request_id"] == request_id:  # match on request_id
                    print(record.value.decode())
                    return
    finally:
        await consumer.stop()


asyncio.run(main())
