#!/usr/bin/env bash
# First event with kcat (librdkafka): two asset events and a loan request for one user, then
# that request's decision. Every record is keyed by its user_id (-k): a record whose key is
# not the user_id in its value is dead-lettered KEY_MISMATCH and never scored.
set -euo pipefail
BOOTSTRAP=${CREDITLINE_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
ASSETS=${CREDITLINE_TOPIC_ASSETS:-credit.assets}
REQUESTS=${CREDITLINE_TOPIC_LOAN_REQUESTS:-credit.loan-requests}
DECISIONS=${CREDITLINE_TOPIC_LOAN_DECISIONS:-credit.loan-decisions}
USER_ID=${USER_ID:-u-42}
RUN_ID=${RUN_ID:-$(date +%s)}   # makes the ids unique per run
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 1. Events: a verified monthly income and a verified deposit. One line, one record.
kcat -P -b "$BOOTSTRAP" -t "$ASSETS" -k "$USER_ID" -H source=quickstart <<JSON
{"event_id": "$USER_ID.income.$RUN_ID", "user_id": "$USER_ID", "occurred_at": "$NOW", "asset_type": "income", "value": "12000.00", "verified": true}
{"event_id": "$USER_ID.deposit.$RUN_ID", "user_id": "$USER_ID", "occurred_at": "$NOW", "asset_type": "deposit", "value": "50000.00", "verified": true}
JSON

# Events are folded within ~100 ms; a request sent before them is judged without them.
sleep 2

# 2. A loan request, with the status the app showed the user.
REQUEST_ID="$USER_ID.loan.$RUN_ID"
kcat -P -b "$BOOTSTRAP" -t "$REQUESTS" -k "$USER_ID" <<JSON
{"request_id": "$REQUEST_ID", "user_id": "$USER_ID", "requested_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "amount": "3000.00", "term_months": 12, "displayed_status": "closed"}
JSON

# 3. Its decision: read the decisions topic to its end (-e) until the request_id shows up.
for _ in $(seq 30); do
  if kcat -C -b "$BOOTSTRAP" -t "$DECISIONS" -o beginning -e -q -f '%s\n' |
    grep -F "\"request_id\":\"$REQUEST_ID\""; then
    exit 0
  fi
  sleep 1
done
echo "no decision for $REQUEST_ID after 30 s: is a worker running?" >&2
exit 1
