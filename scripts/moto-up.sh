# Sourced by the test scripts that need a real moto server (test-aws.sh, test-digitalocean.sh):
# installs the pinned moto into .venv-moto/ (once), starts scripts/moto_server.py on a free
# loopback port, waits until it answers and sets ENDPOINT, MOTO_PID, `stop_moto` and an EXIT trap
# that stops it (a script with its own clean-up calls stop_moto from its trap).
# MOTO_WHO names the caller in messages.
MOTO_WHO="${MOTO_WHO:-moto}"
VENV="${KONSTACKS_MOTO_VENV:-.venv-moto}"
REQUIREMENTS=scripts/requirements-moto.txt
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

source scripts/venv.sh
# (Re)install when the venv is missing or does not hold exactly the pinned version.
pinned="$(grep -Eo 'moto\[server\]==[0-9.]+' "$REQUIREMENTS" | sed 's/\[server\]//')"
ensure_venv "$MOTO_WHO" "$VENV" "$REQUIREMENTS" "$pinned" moto_server

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
LOG="$(mktemp "${TMPDIR:-/tmp}/konstacks-moto-XXXXXX.log")"
# ACM issues a DNS-validated certificate after MOTO_ACM_VALIDATION_WAIT seconds (60 by default).
# scripts/moto_server.py is moto_server plus the ElastiCache replication-group lifecycle moto
# 5.2.5 lacks (deletes that finish, member clusters, replica counts, subnet group changes).
MOTO_EC2_LOAD_DEFAULT_AMIS=false MOTO_ACM_VALIDATION_WAIT=2 "$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!

stop_moto() {
    if kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
}
trap stop_moto EXIT
trap 'exit 130' INT TERM

ENDPOINT="http://127.0.0.1:$PORT"
ready=no
for _ in $(seq 1 150); do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        echo "$MOTO_WHO: moto_server exited; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1)' "$ENDPOINT" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.2
done
if [ "$ready" != yes ]; then
    echo "$MOTO_WHO: moto_server did not answer on $ENDPOINT within 30 s; its log:" >&2
    cat "$LOG" >&2
    exit 1
fi
echo "$MOTO_WHO: $pinned answers on $ENDPOINT (log: $LOG)"
