#!/usr/bin/env bash
# Quick start 1: deploy the whole stack into a local moto server, serve its API on this machine
# with the stack's API keys and usage plans enforced (`movies-stack serve`), and call it.
#   scripts/demo.sh          deploy, serve, show the API answering, then stop everything
#   scripts/demo.sh --keep   ... and keep serving (and moto running) until Ctrl-C
# The stack is config/demo.toml: config/local.toml with a small Standard plan (1 rps, burst 3).
# Ports: MOTO_PORT (default 5055), SERVE_PORT (default 3000). Honours CARGO_TARGET_DIR and
# MOVIES_STACK_VENV; MOVIES_STACK_ARTIFACT=ZIP deploys that zip instead of building the arm64
# handler. Needs curl.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MS_ROOT"

KEEP=0
case "${1:-}" in
--keep) KEEP=1 ;;
"") ;;
*)
    echo "usage: $0 [--keep]" >&2
    exit 2
    ;;
esac
command -v curl >/dev/null || ms_die "the demo calls the API with curl: install it (apt install curl, brew install curl)"
SERVE_PORT="${SERVE_PORT:-3000}"

"$MS_ROOT/scripts/setup.sh"
ms_say "cargo build --workspace --bins"
cargo build --workspace --bins
BIN="$(ms_bin)"
[ -x "$BIN" ] || ms_die "$BIN was not built"
# The handler for this machine, as `serve` runs it (the debug build from the line above: the same
# code as the deployed arm64 one; `serve` without --bootstrap builds a release one instead).
BOOTSTRAP="$(ms_target_dir)/debug/bootstrap"
[ -x "$BOOTSTRAP" ] || ms_die "$BOOTSTRAP was not built"
ms_use_venv # cargo-lambda + zig for building the arm64 handler
ms_port_free "$SERVE_PORT" || ms_die "port $SERVE_PORT on 127.0.0.1 is in use: choose another with SERVE_PORT=..."

# Emulator only: dummy credentials, no profile, nothing real reachable by accident.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
# moto has neither API Gateway's quotas nor IAM propagation: pace and hold 10 times shorter than
# against AWS (the deployer refuses this without an endpoint URL).
export MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP=10

SERVE_PID=""
# On any exit (Ctrl-C included): serve stops its function processes, then moto stops.
cleanup() {
    if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
        ms_say "stopping movies-stack serve (pid $SERVE_PID)"
        kill -INT "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    ms_moto_stop
}
ms_moto_start
trap cleanup EXIT
trap 'exit 130' INT TERM
ENDPOINT="http://127.0.0.1:$MS_PORT"
MS=("$BIN" --env demo --endpoint-url "$ENDPOINT")

ARTIFACT=()
[ -z "${MOVIES_STACK_ARTIFACT:-}" ] || ARTIFACT=(--artifact "$MOVIES_STACK_ARTIFACT")
# What an administrator does once per stack on AWS: the permissions boundary of its roles.
ms_say "movies-stack --env demo --endpoint-url $ENDPOINT bootstrap --apply"
"${MS[@]}" bootstrap --apply
ms_say "movies-stack --env demo --endpoint-url $ENDPOINT up ${ARTIFACT[*]}"
# Human output: the progress on stderr, then the stack's outputs on stdout (`--output json` would
# make the progress JSON lines too).
"${MS[@]}" up "${ARTIFACT[@]}"

# serve's discovery file (where `traces --local` and `top --local` find it) beside its logs.
export MOVIES_STACK_STATE_DIR="$MS_STATE_DIR"
SERVE_LOG="$MS_STATE_DIR/serve-$SERVE_PORT.log"
ACCESS_LOG="$MS_STATE_DIR/serve-$SERVE_PORT-access.log"
: >"$ACCESS_LOG"
ms_say "movies-stack --env demo serve --port $SERVE_PORT --bootstrap $BOOTSTRAP (log: $SERVE_LOG)"
"${MS[@]}" serve --port "$SERVE_PORT" --bootstrap "$BOOTSTRAP" --access-log "$ACCESS_LOG" >"$SERVE_LOG" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 300); do
    grep -q "serve: listening on" "$SERVE_LOG" 2>/dev/null && break
    kill -0 "$SERVE_PID" 2>/dev/null || {
        tail -n 20 "$SERVE_LOG" >&2
        ms_die "movies-stack serve exited during start-up (see $SERVE_LOG)"
    }
    sleep 0.2
done
grep -q "serve: listening on" "$SERVE_LOG" || ms_die "movies-stack serve did not start within 60 s (see $SERVE_LOG)"
grep "^serve: " "$SERVE_LOG" | sed 's/^/  /'

API="http://127.0.0.1:$SERVE_PORT/prod/"
key_of() { "${MS[@]}" -q --output json keys --tier "$1" | "$MS_VENV/bin/python" -c "import json,sys; print(json.load(sys.stdin)['keys']['$1']['value'])"; }
STANDARD_KEY="$(key_of standard)"
PREMIUM_KEY="$(key_of premium)"
MOVIE='{"year":"2023","title":"Test Movie","id":"12"}'

# Show a call as typed (the key by its variable's name), then its answer and status.
call() {
    local shown="$1"
    shift
    printf '$ curl %s\n' "$shown"
    curl -s -w '   -> HTTP %{http_code}\n' "$@"
}

ms_say "1. a POST without an API key: API Gateway refuses it"
call "-X POST $API -d '$MOVIE'" -X POST "$API" -H 'content-type: application/json' -d "$MOVIE"

ms_say "2. the sample with the Standard key: the real handler writes it to DynamoDB"
HEADERS="$MS_STATE_DIR/serve-$SERVE_PORT-request2.headers"
call "-X POST $API -H \"x-api-key: \$STANDARD_KEY\" -d '$MOVIE'" \
    -X POST "$API" -H "x-api-key: $STANDARD_KEY" -H 'content-type: application/json' -d "$MOVIE" -D "$HEADERS"
# Its X-Ray trace id, as API Gateway returns it (`X-Amzn-Trace-Id: Root=1-...`).
TRACE_ID="$(tr -d '\r' <"$HEADERS" | sed -n 's/^[Xx]-[Aa]mzn-[Tt]race-[Ii]d: *Root=\([^;]*\).*/\1/p')"

ms_say "3. the item, read back from the table in moto"
"$MS_VENV/bin/python" - "$ENDPOINT" <<'PY'
import json, sys, boto3
db = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1")
item = db.get_item(TableName="demo_table", Key={"id": {"S": "12"}}).get("Item", {})
print("  demo_table:", json.dumps({k: next(iter(v.values())) for k, v in sorted(item.items())}))
PY

ms_say "4. a burst of 5 with the Standard key (1 rps, burst 3), then the Premium key"
sleep 3 # the Standard key's bucket refills to its burst (1 token per second, up to 3)
for i in 1 2 3 4 5; do
    printf '  Standard #%s: ' "$i"
    curl -s -w '   -> HTTP %{http_code}\n' -X POST "$API" -H "x-api-key: $STANDARD_KEY" \
        -H 'content-type: application/json' -d "{\"year\":\"2024\",\"title\":\"Burst $i\",\"id\":\"b$i\"}"
done
printf '  Premium:     '
curl -s -w '   -> HTTP %{http_code}\n' -X POST "$API" -H "x-api-key: $PREMIUM_KEY" \
    -H 'content-type: application/json' -d '{"year":"2024","title":"Premium","id":"p1"}'

ms_say "the access log (the stage's format), last 2 lines: $ACCESS_LOG"
tail -n 2 "$ACCESS_LOG" | sed 's/^/  /'

# serve is the X-Ray daemon of the function processes it runs and records API Gateway's and
# Lambda's segments itself: request 2 as a waterfall, without an AWS account.
ms_say "5. request 2's trace: movies-stack --env demo traces --local --id $TRACE_ID"
[ -n "$TRACE_ID" ] || ms_die "request 2's answer had no X-Amzn-Trace-Id header (see $HEADERS)"
"${MS[@]}" traces --local --id "$TRACE_ID"

cat <<EOF

Try it by hand$([ "$KEEP" -eq 1 ] || printf ' (scripts/demo.sh --keep keeps it serving)'):
  export STANDARD_KEY=$STANDARD_KEY PREMIUM_KEY=$PREMIUM_KEY
  curl -X POST $API -H "x-api-key: \$STANDARD_KEY" -H 'content-type: application/json' -d '$MOVIE'
  curl -X POST ${API}movies -H "x-api-key: \$PREMIUM_KEY" -d '{}'     # 404 from the handler
  curl -X GET  $API -H "x-api-key: \$PREMIUM_KEY"                     # 405 from the handler
  $BIN --env demo --endpoint-url $ENDPOINT status
  MOVIES_STACK_STATE_DIR=$MS_STATE_DIR $BIN --env demo traces --local      # the last traces
  MOVIES_STACK_STATE_DIR=$MS_STATE_DIR $BIN --env demo top --local         # live counters
Function and serve logs: $SERVE_LOG
EOF

if [ "$KEEP" -eq 1 ]; then
    ms_say "serving $API (moto on $ENDPOINT); Ctrl-C stops both"
    wait "$SERVE_PID"
fi
