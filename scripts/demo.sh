#!/usr/bin/env bash
# Quick start 1: deploy the whole stack into a local moto server and print its outputs.
#   scripts/demo.sh          deploy, print the outputs, stop moto
#   scripts/demo.sh --keep   ... and keep moto running until Ctrl-C (to poke at it)
# Port: MOTO_PORT (default 5055). Honours CARGO_TARGET_DIR and MOVIES_STACK_VENV.
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

"$MS_ROOT/scripts/setup.sh"
ms_say "cargo build --workspace --bins"
cargo build --workspace --bins
BIN="$(ms_bin)"
[ -x "$BIN" ] || ms_die "$BIN was not built"
ms_use_venv # cargo-lambda + zig for building the arm64 handler

# Emulator only: dummy credentials, no profile, nothing real reachable by accident.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

ms_moto_start
trap ms_moto_stop EXIT
trap 'exit 130' INT TERM
ENDPOINT="http://127.0.0.1:$MS_PORT"

OUT="$(mktemp "${TMPDIR:-/tmp}/movies-stack-demo.XXXXXX")"
ms_say "movies-stack --env local --endpoint-url $ENDPOINT up"
"$BIN" --env local --endpoint-url "$ENDPOINT" --output json up >"$OUT"

ms_say "stack outputs"
"$MS_VENV/bin/python" - "$OUT" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for key, value in doc.get("outputs", {}).items():
    print(f"  {key:18} {value}")
print(f"  ({doc.get('changes', '?')} changes)")
PY
rm -f "$OUT"

if [ "$KEEP" -eq 1 ]; then
    ms_say "moto keeps running on $ENDPOINT; Ctrl-C to stop it"
    while true; do sleep 3600; done
fi
