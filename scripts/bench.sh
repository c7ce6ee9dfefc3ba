#!/usr/bin/env bash
# Benchmarks (not tests; results in docs/benchmarks.md):
#   1. handler: zipped size of the arm64 artifact, start-up time (spawn -> first Runtime API poll)
#      and per-request overhead of the host RELEASE build of `bootstrap`   (tests/src/bin/bench_handler.rs)
#   2. deploy: `movies-stack up` cold and no-op against moto with latency injected per AWS call,
#      at --concurrency 1 and 8                                             (tests/src/bin/bench_deploy.rs)
#   3. serve: requests/s and p50/p99 through `movies-stack serve` with 1 and 4 environments, and
#      serve's own overhead against invoking the Runtime API directly      (tests/src/bin/bench_serve.rs)
#
# Builds what it needs:
#   - `cargo build --workspace --bins` (the harness, the deployer), as scripts/test.sh does;
#   - the host release `bootstrap` in a SEPARATE target dir ($BENCH_TARGET_DIR, default
#     <repo>/target-bench): `cargo build --release --bin bootstrap` there builds only the handler
#     (about 3 min clean on 2 cores, seconds when up to date) and leaves the main target alone;
#   - the arm64 zip of the current handler: `movies-stack --env local package` with the same
#     separate target dir, into $BENCH_TARGET_DIR/handler-arm64.zip (cargo-lambda + zig from the
#     venv; about 3 min clean, seconds when up to date). Set MOVIES_STACK_ARTIFACT to measure and
#     deploy a given zip instead.
#
# Knobs: BENCH_INVOCATIONS (2000), BENCH_STARTUP_RUNS (30), BENCH_LATENCY_MS (50),
#        BENCH_CONCURRENCY (1,8,1,8,1,8: each level 3 times, interleaved), BENCH_SKIP_DEPLOY=1,
#        BENCH_SERVE_REQUESTS (2000 per row), BENCH_SERVE_CLIENTS (4), BENCH_SKIP_SERVE=1,
#        BENCH_SKIP_HANDLER=1 (each part can be skipped).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MS_ROOT"

"$MS_ROOT/scripts/setup.sh"
ms_use_venv
TARGET="$(ms_target_dir)"
BENCH_TARGET="${BENCH_TARGET_DIR:-$MS_ROOT/target-bench}"
ARTIFACT="${MOVIES_STACK_ARTIFACT:-$BENCH_TARGET/handler-arm64.zip}"
export MOVIES_STACK_VENV="$MS_VENV"

ms_say "cargo build --workspace --bins"
cargo build --workspace --bins

ms_say "host release bootstrap: CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --bin bootstrap"
start=$(date +%s)
CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release --bin bootstrap
ms_say "release build took $(($(date +%s) - start))s"

if [ -z "${MOVIES_STACK_ARTIFACT:-}" ]; then
    ms_say "arm64 zip: CARGO_TARGET_DIR=$BENCH_TARGET movies-stack --env local package --out $ARTIFACT"
    mkdir -p "$BENCH_TARGET"
    CARGO_TARGET_DIR="$BENCH_TARGET" "$TARGET/debug/movies-stack" --env local package --out "$ARTIFACT"
fi
[ -s "$ARTIFACT" ] || ms_die "no artifact at $ARTIFACT"

if [ "${BENCH_SKIP_HANDLER:-0}" != 1 ]; then
    printf '\n## Handler (%s, %s)\n' "$(uname -m)" "$(date -u +%Y-%m-%dT%H:%MZ)"
    "$TARGET/debug/bench_handler" \
        --bootstrap "$BENCH_TARGET/release/bootstrap" \
        --artifact "$ARTIFACT" \
        --invocations "${BENCH_INVOCATIONS:-2000}" \
        --startup-runs "${BENCH_STARTUP_RUNS:-30}"
fi

if [ "${BENCH_SKIP_DEPLOY:-0}" != 1 ]; then
    printf '\n## Deploy\n'
    MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_deploy" \
        --artifact "$ARTIFACT" \
        --latency-ms "${BENCH_LATENCY_MS:-50}" \
        --concurrency "${BENCH_CONCURRENCY:-1,8,1,8,1,8}"
fi

if [ "${BENCH_SKIP_SERVE:-0}" != 1 ]; then
    printf '\n## Serve (%s, %s)\n' "$(uname -m)" "$(date -u +%Y-%m-%dT%H:%MZ)"
    MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_serve" \
        --bootstrap "$BENCH_TARGET/release/bootstrap" \
        --artifact "$ARTIFACT" \
        --requests "${BENCH_SERVE_REQUESTS:-2000}" \
        --clients "${BENCH_SERVE_CLIENTS:-4}"
fi
