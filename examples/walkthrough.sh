#!/usr/bin/env bash
# A first session with the gateway, with curl: sign in, ask who we are, read the latest
# events, report a threat, count events per hour. Needs curl and python3 (for JSON).
#
#   GATEWAY=http://127.0.0.1:8000 TENANT=demo-bank USERNAME=olivia.analyst \
#   PASSWORD='...' examples/walkthrough.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${GATEWAY:=http://127.0.0.1:8000}" "${TENANT:?set TENANT}" "${USERNAME:?set USERNAME}" "${PASSWORD:?set PASSWORD}"

# POST one document from examples/graphql with variables (JSON); prints the answer.
graphql() {
    local file="$1" variables="$2" token="${3:-}"
    local body
    body=$(python3 -c 'import json,sys; print(json.dumps({"query": open(sys.argv[1]).read(), "variables": json.loads(sys.argv[2])}))' \
        "$here/graphql/$file" "$variables")
    curl -sS --fail-with-body -X POST "$GATEWAY/graphql" \
        -H 'content-type: application/json' \
        ${token:+-H "authorization: Bearer $token"} \
        --data "$body"
}

# Fails with the answer when it holds errors; prints `data.<path>` otherwise.
field() {
    python3 -c '
import json, sys
answer = json.loads(sys.stdin.read())
if answer.get("errors"):
    sys.exit("error: " + json.dumps(answer["errors"]))
value = answer["data"]
for key in sys.argv[1].split("."):
    value = value[key]
print(value if isinstance(value, str) else json.dumps(value))' "$1"
}

credentials=$(python3 -c 'import json,sys; print(json.dumps({"input": {"tenant": sys.argv[1], "username": sys.argv[2], "password": sys.argv[3]}}))' \
    "$TENANT" "$USERNAME" "$PASSWORD")
token=$(graphql login.graphql "$credentials" | field login.accessToken)
echo "signed in as $USERNAME"

echo "me: $(graphql me.graphql '{}' "$token" | field me)"
echo "latest events: $(graphql latest-events.graphql '{"first": 5}' "$token" | field securityEvents.edges | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') shown"

threat=$(graphql report-threat.graphql \
    '{"input": {"threatType": "phishing", "severity": "MEDIUM", "description": "reported from the walkthrough", "indicators": ["domain:login-walkthrough.example"]}}' \
    "$token" | field reportThreat.id)
echo "reported threat $threat"

window=$(python3 -c 'import datetime, json; now = datetime.datetime.now(datetime.timezone.utc); print(json.dumps({"from": (now - datetime.timedelta(hours=24)).isoformat(), "to": now.isoformat()}))')
echo "events per hour and severity, last 24 h: $(graphql event-counts.graphql "$window" "$token" | field securityEventCounts | python3 -c 'import json,sys; print(sum(b["count"] for b in json.load(sys.stdin)))') in total"
