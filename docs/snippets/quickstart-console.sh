#!/usr/bin/env bash
# First event with Kafka's own console tools (bin/ of a Kafka distribution, or /opt/kafka/bin
# in the apache/kafka image): parse.key=true takes the key from each line, before the "|".
# The key must be the user_id: otherwise the record is dead-lettered KEY_MISMATCH.
set -euo pipefail
BOOTSTRAP=${CREDITLINE_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
ASSETS=${CREDITLINE_TOPIC_ASSETS:-credit.assets}
REQUESTS=${CREDITLINE_TOPIC_LOAN_REQUESTS:-credit.loan-requests}
DECISIONS=${CREDITLINE_TOPIC_LOAN_DECISIONS:-credit.loan-decisions}
USER_ID=${USER_ID:-u-42}
RUN_ID=${RUN_ID:-$(date +%s)}
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 1. Events, one "key|value" line each.
kafka-console-producer.sh --bootstrap-server "$BOOTSTRAP" --topic "$ASSETS" \
  --property parse.key=true --property 'key.separator=|' <<JSON
$USER_ID|{"event_id": "$USER_ID.income.$RUN_ID", "user_id": "$USER_ID", "occurred_at": "$NOW", "asset_type": "income", "value": "12000.00", "verified": true}
$USER_ID|{"event_id": "$USER_ID.deposit.$RUN_ID", "user_id": "$USER_ID", "occurred_at": "$NOW", "asset_type": "deposit", "value": "50000.00", "verified": true}
JSON

sleep 2  # events are folded within ~100 ms; a request sent before them is judged without them

# 2. The loan request.
REQUEST_ID="$USER_ID.loan.$RUN_ID"
kafka-console-producer.sh --bootstrap-server "$BOOTSTRAP" --topic "$REQUESTS" \
  --property parse.key=true --property 'key.separator=|' <<JSON
$USER_ID|{"request_id": "$REQUEST_ID", "user_id": "$USER_ID", "requested_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "amount": "3000.00", "term_months": 12, "displayed_status": "closed"}
JSON

# 3. Its decision: the consumer stops 10 s after the last record it read.
kafka-console-consumer.sh --bootstrap-server "$BOOTSTRAP" --topic "$DECISIONS" \
  --from-beginning --timeout-ms 10000 2>/dev/null |
  grep -m 1 -F "\"request_id\":\"$REQUEST_ID\""
