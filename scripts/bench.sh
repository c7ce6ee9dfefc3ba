#!/usr/bin/env bash
# Benchmarks (not tests; results in docs/benchmarks.md):
#   1. handler: zipped size of the arm64 artifact, start-up time (spawn -> first Runtime API poll)
#      and per-request overhead of the host RELEASE build of `bootstrap`   (tests/src/bin/bench_handler.rs)
#   2. deploy round trips: cold `up`, no-op `up`, a code-only change, a config change and `down`
#      against moto with a fixed latency injected per AWS call; rounds = wall / latency, calls by
#      operation, the bound and critical path, before/after            (tests/src/bin/bench_deploy.rs)
#      a. the strict model with no waits (`--timings instant`), BENCH_LATENCY_MS per call, each run
#         again at 0 ms to subtract the local work;
#      b. the strict model with AWS-like waits (`--timings aws-like`), 80 ms per call, cold `up` only.
#   3. serve: requests/s and p50/p99 through `movies-stack serve` with 1 and 4 environments, and
#      serve's own overhead against invoking the Runtime API directly; then a real load generator
#      (Debian's `wrk`, installed here when missing) at 1, 8 and 64 connections: only 200 and 429
#      answers                                                              (tests/src/bin/bench_serve.rs)
#   4. serve --watch: edit to answer (the handler's message edited, then asked for until an answer
#      carries it) with `serve --watch`, against `cargo lambda watch` run the same way (the venv's
#      cargo-lambda), in a copy of the handler's workspace under <target>/serve-watch; medians and
#      their ratio                                                          (tests/src/bin/bench_watch.rs)
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
# Knobs: BENCH_INVOCATIONS (2000), BENCH_STARTUP_RUNS (30), BENCH_SKIP_DEPLOY=1,
#        BENCH_SKIP_HANDLER=1, BENCH_SKIP_SERVE=1 (each part can be skipped);
#        serve: BENCH_SERVE_REQUESTS (2000 per row), BENCH_SERVE_CLIENTS (4), BENCH_SERVE_WRK_SECONDS (10 per row);
#        serve --watch: BENCH_SKIP_WATCH=1, BENCH_WATCH_REPETITIONS (5 edits per tool), BENCH_WATCH_PROFILE
#        (dev, or release: the cargo profile both tools build with);
#        deploy: BENCH_LATENCY_MS (100), BENCH_REPEAT (3), BENCH_CONCURRENCY (the deployer's default),
#        BENCH_SKIP_AWS_LIKE=1, BENCH_LOG_DIR (each run's output and timed AWS calls),
#        BENCH_BEFORE_BIN (another movies-stack binary for the "before" column) with
#        BENCH_BEFORE_WITHOUT (strict model behaviours turned off for it, default tag-rules,validation).
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

if [ "${BENCH_SKIP_HANDLER:-0}" != 1 ]; then
    ms_say "host release bootstrap: CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --bin bootstrap"
    start=$(date +%s)
    CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release --bin bootstrap
    ms_say "release build took $(($(date +%s) - start))s"
fi

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
    common=(--artifact "$ARTIFACT")
    if [ -n "${BENCH_CONCURRENCY:-}" ]; then
        common+=(--concurrency "$BENCH_CONCURRENCY")
    fi
    # The before column only without waits: main's deployer (76ee435) does not finish a cold `up`
    # under AWS-like IAM propagation (docs/benchmarks.md).
    before=()
    if [ -n "${BENCH_BEFORE_BIN:-}" ]; then
        [ -x "$BENCH_BEFORE_BIN" ] || ms_die "BENCH_BEFORE_BIN=$BENCH_BEFORE_BIN is not an executable"
        before=(--before "$BENCH_BEFORE_BIN" --before-without "${BENCH_BEFORE_WITHOUT:-tag-rules,validation}")
    fi
    instant_logs=()
    aws_like_logs=()
    if [ -n "${BENCH_LOG_DIR:-}" ]; then
        instant_logs=(--log-dir "$BENCH_LOG_DIR/instant")
        aws_like_logs=(--log-dir "$BENCH_LOG_DIR/aws-like")
    fi
    printf '\n## Deploy round trips (%s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_deploy" "${common[@]}" "${before[@]}" "${instant_logs[@]}" \
        --timings instant --latency-ms "${BENCH_LATENCY_MS:-100}" --baseline --repeat "${BENCH_REPEAT:-3}"
    if [ "${BENCH_SKIP_AWS_LIKE:-0}" != 1 ]; then
        printf '\n## Deploy under AWS-like waits (%s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
        MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_deploy" "${common[@]}" "${aws_like_logs[@]}" \
            --timings aws-like --latency-ms 80 --steps cold --baseline
    fi
fi

if [ "${BENCH_SKIP_SERVE:-0}" != 1 ]; then
    if ! command -v wrk >/dev/null; then
        ms_say "installing the load generator: apt-get install wrk"
        apt-get install -y wrk >/dev/null || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null) ||
            ms_die "cannot install wrk (apt-get install wrk)"
    fi
    printf '\n## Serve (%s, %s)\n' "$(uname -m)" "$(date -u +%Y-%m-%dT%H:%MZ)"
    MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_serve" \
        --bootstrap "$BENCH_TARGET/release/bootstrap" \
        --artifact "$ARTIFACT" \
        --requests "${BENCH_SERVE_REQUESTS:-2000}" \
        --clients "${BENCH_SERVE_CLIENTS:-4}" \
        --wrk-seconds "${BENCH_SERVE_WRK_SECONDS:-10}"
fi

if [ "${BENCH_SKIP_WATCH:-0}" != 1 ]; then
    printf '\n## serve --watch: edit to answer (%s, %s)\n' "$(uname -m)" "$(date -u +%Y-%m-%dT%H:%MZ)"
    MOVIES_STACK_BIN="$TARGET/debug/movies-stack" "$TARGET/debug/bench_watch" \
        --artifact "$ARTIFACT" \
        --repetitions "${BENCH_WATCH_REPETITIONS:-5}" \
        --profile "${BENCH_WATCH_PROFILE:-dev}" \
        --cargo-lambda "$MS_VENV/bin/cargo-lambda"
fi
