#!/usr/bin/env bash
# What a wrong key does: the value is user u-42's, the key says another user. creditline
# dead-letters the record KEY_MISMATCH: it is never scored, for either user. (It would
# otherwise land on another user's partition, where ordering per user is not guaranteed.)
set -euo pipefail
BOOTSTRAP=${CREDITLINE_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
SPENDING=${CREDITLINE_TOPIC_SPENDING:-credit.spending}
DEAD_LETTER=${CREDITLINE_TOPIC_DEAD_LETTER:-credit.dead-letter}
USER_ID=${USER_ID:-u-42}
RUN_ID=${RUN_ID:-$(date +%s)}
EVENT_ID="$USER_ID.spend.$RUN_ID"

kcat -P -b "$BOOTSTRAP" -t "$SPENDING" -k "someone-else" <<JSON
{"event_id": "$EVENT_ID", "user_id": "$USER_ID", "occurred_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "amount": "25.50", "category": "groceries"}
JSON

# The dead letter: the worker's headers (error.code, error.message, source.*) and your bytes.
# (`creditline dlq list --code KEY_MISMATCH` shows the same.)
for _ in $(seq 30); do
  if kcat -C -b "$BOOTSTRAP" -t "$DEAD_LETTER" -o beginning -e -q -f '%h %s\n' |
    grep -F "\"$EVENT_ID\""; then
    exit 0
  fi
  sleep 1
done
echo "no dead letter for $EVENT_ID after 30 s: is a worker running?" >&2
exit 1
