# shellcheck shell=bash
# Helpers shared by the quick-start scripts. Source it; it defines functions and variables only.
#
#   MS_ROOT   the repository root
#   MS_VENV   the Python venv with moto_server and cargo-lambda ($MOVIES_STACK_VENV, default .venv)
#   MS_PORT   the moto port for demo/moto.sh ($MOTO_PORT, default 5055)

MS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MS_VENV="${MOVIES_STACK_VENV:-$MS_ROOT/.venv}"
case "$MS_VENV" in /*) ;; *) MS_VENV="$MS_ROOT/$MS_VENV" ;; esac
MS_PORT="${MOTO_PORT:-5055}"
MS_STATE_DIR="$MS_ROOT/.moto"

ms_say() { printf '==> %s\n' "$*" >&2; }
ms_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# The cargo target directory (honours CARGO_TARGET_DIR and .cargo/config.toml).
ms_target_dir() {
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then
        case "$CARGO_TARGET_DIR" in
        /*) printf '%s\n' "$CARGO_TARGET_DIR" ;;
        *) printf '%s\n' "$MS_ROOT/$CARGO_TARGET_DIR" ;;
        esac
        return
    fi
    local dir
    dir="$(cd "$MS_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)" || true
    printf '%s\n' "${dir:-$MS_ROOT/target}"
}

ms_bin() { printf '%s/debug/movies-stack\n' "$(ms_target_dir)"; }

# Put the venv first on PATH (cargo-lambda, and the python that finds zig from the ziglang wheel).
ms_use_venv() {
    [ -x "$MS_VENV/bin/moto_server" ] || ms_die "no moto_server in $MS_VENV: run scripts/setup.sh first"
    export PATH="$MS_VENV/bin:$PATH"
}

ms_port_free() {
    "$MS_VENV/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
# As the servers themselves do: connections of a server that just stopped (TIME_WAIT) do not make
# the port busy; a listening socket still does.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

ms_http_ok() {
    "$MS_VENV/bin/python" - "$1" "${2:-GET}" "${3:-}" <<'PY'
import sys, urllib.request
url, method, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, method=method, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json"} if body else {})
try:
    with urllib.request.urlopen(req, timeout=2) as r:
        sys.exit(0 if r.status < 300 else 1)
except Exception:
    sys.exit(1)
PY
}

# Start moto_server on 127.0.0.1:$MS_PORT in the background, wait until it answers, and switch
# Lambda to the Docker-less backend (before any function exists). pid in $MS_STATE_DIR/moto-$PORT.pid.
ms_moto_start() {
    [ -x "$MS_VENV/bin/moto_server" ] || ms_die "no moto_server in $MS_VENV: run scripts/setup.sh first"
    local port="$MS_PORT" url="http://127.0.0.1:$MS_PORT"
    local pidfile="$MS_STATE_DIR/moto-$port.pid" log="$MS_STATE_DIR/moto-$port.log"
    mkdir -p "$MS_STATE_DIR"
    if ! ms_port_free "$port"; then
        ms_die "port $port on 127.0.0.1 is already in use (another moto_server?). Stop it with 'scripts/moto.sh stop' or choose another port with MOTO_PORT=..."
    fi
    ms_say "starting moto_server on $url (log: $log)"
    MOTO_IAM_LOAD_MANAGED_POLICIES=true nohup "$MS_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    echo $! >"$pidfile"
    local i
    for i in $(seq 1 150); do
        if ms_http_ok "$url/moto-api/"; then
            ms_http_ok "$url/moto-api/config" POST '{"lambda":{"use_docker":false}}' ||
                ms_die "moto_server answered, but POST /moto-api/config failed"
            ms_say "moto_server ready on $url (pid $(cat "$pidfile"))"
            return 0
        fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            rm -f "$pidfile"
            ms_die "moto_server exited during start-up (see $log)"
        fi
        sleep 0.2
    done
    ms_moto_stop
    ms_die "moto_server did not answer on $url within 30 s (see $log)"
}

ms_moto_stop() {
    local pidfile="$MS_STATE_DIR/moto-$MS_PORT.pid" pid
    [ -f "$pidfile" ] || {
        ms_say "no moto_server started by these scripts on port $MS_PORT"
        return 0
    }
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        ms_say "stopping moto_server (pid $pid)"
        kill "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}
