"""First event with confluent-kafka (librdkafka): two asset events and a loan request, then
its decision.

Every record is keyed by its user_id: a record whose key is not the user_id in its value is
dead-lettered KEY_MISMATCH and never scored.
"""

import json
import os
import sys
import time
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

BOOTSTRAP = os.environ.get("CREDITLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
ASSETS = os.environ.get("CREDITLINE_TOPIC_ASSETS", "credit.assets")
REQUESTS = os.environ.get("CREDITLINE_TOPIC_LOAN_REQUESTS", "credit.loan-requests")
DECISIONS = os.environ.get("CREDITLINE_TOPIC_LOAN_DECISIONS", "credit.loan-decisions")
USER_ID = os.environ.get("USER_ID", "u-42")
RUN_ID = os.environ.get("RUN_ID") or str(int(time.time()))  # unique ids per run


def now() -> str:
    return datetime.now(UTC).isoformat()  # RFC 3339 with an offset


producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
for kind, value in (("income", "12000.00"), ("deposit", "50000.00")):
    event = {
        "event_id": f"{USER_ID}.{kind}.{RUN_ID}",
        "user_id": USER_ID,
        "occurred_at": now(),
        "asset_type": kind,
        "value": value,  # money as a decimal string, never a float
        "verified": True,
    }
    # The key IS the user_id.
    producer.produce(ASSETS, key=USER_ID, value=json.dumps(event), headers={"source": "quickstart"})
if producer.flush(10):
    sys.exit("events not delivered")
time.sleep(2)  # events are folded within ~100 ms; don't outrun them

request_id = f"{USER_ID}.loan.{RUN_ID}"
request = {
    "request_id": request_id,
    "user_id": USER_ID,
    "requested_at": now(),
    "amount": "3000.00",
    "term_months": 12,
    "displayed_status": "closed",
}
producer.produce(REQUESTS, key=USER_ID, value=json.dumps(request))
if producer.flush(10):
    sys.exit("request not delivered")

# Every partition of the decisions topic from the start, no offsets committed.
consumer = Consumer(
    {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"quickstart-{RUN_ID}",
        "enable.auto.commit": False,
    }
)
partitions = consumer.list_topics(DECISIONS, timeout=10).topics[DECISIONS].partitions
consumer.assign([TopicPartition(DECISIONS, p, OFFSET_BEGINNING) for p in partitions])
deadline = time.monotonic() + 30
try:
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        if json.loads(message.value())["request_id"] == request_id:  # match on request_id
            print(message.value().decode())
            sys.exit(0)
    sys.exit(f"no decision for {request_id} after 30 s: is a worker running?")
finally:
    consumer.close()
