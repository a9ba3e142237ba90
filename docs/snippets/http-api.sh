#!/usr/bin/env bash
# A loan decision over HTTP with curl: POST the request as it would go on the request topic
# and get its decision back, byte for byte as published. Any worker that answers loan
# requests (role all or decisions) serves the API on its web port.
set -euo pipefail
API=${CREDITLINE_API:-http://127.0.0.1:6066}
USER_ID=${USER_ID:-u-42}
RUN_ID=${RUN_ID:-$(date +%s)}   # makes the request id unique per run
REQUEST_ID="$USER_ID.http.$RUN_ID"
BODY=$(cat <<JSON
{"request_id": "$REQUEST_ID", "user_id": "$USER_ID", "requested_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "amount": "3000.00", "term_months": 12, "displayed_status": "closed"}
JSON
)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# Sending the same body again is always safe: one decision per request_id.
for _ in $(seq 10); do
  STATUS=$(curl -sS -o "$OUT" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$BODY" "$API/v1/decisions")
  case $STATUS in
    200)  # the decision
      cat "$OUT"; echo; exit 0 ;;
    504)  # published, not decided within the wait: ask where the answer says ("poll")
      POLL=$(sed -n 's/.*"poll":"\([^"]*\)".*/\1/p' "$OUT")
      for _ in $(seq 30); do
        if [ "$(curl -sS -o "$OUT" -w '%{http_code}' "$API$POLL")" = 200 ]; then
          cat "$OUT"; echo; exit 0
        fi
        sleep 1
      done ;;
    429|503)  # busy, starting or Kafka away: try again shortly (see Retry-After)
      sleep 1 ;;
    *)  # 409, 413, 415, 422: the problem document names each field at fault
      cat "$OUT" >&2; echo >&2; exit 1 ;;
  esac
done
echo "no decision for $REQUEST_ID: is a worker with the decisions role running?" >&2
exit 1
