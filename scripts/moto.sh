#!/usr/bin/env bash
# Start or stop a local moto_server for the deployer: scripts/moto.sh start|stop|status
# Port: $MOTO_PORT (default 5055). The venv comes from scripts/setup.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
start) ms_moto_start ;;
stop) ms_moto_stop ;;
status)
    pidfile="$MS_STATE_DIR/moto-$MS_PORT.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "moto_server running on http://127.0.0.1:$MS_PORT (pid $(cat "$pidfile"))"
    else
        echo "moto_server not running on port $MS_PORT"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status   (port: MOTO_PORT, default 5055)" >&2
    exit 2
    ;;
esac
