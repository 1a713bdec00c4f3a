#!/usr/bin/env bash
# The dashboard in a real browser: installs Debian's Chromium and its chromedriver when missing,
# starts chromedriver on a free loopback port, and runs tests/dashboard_browser.rs (ignored by a
# plain `cargo test`) against the real `konstacks dashboard`. Screenshots of every step end up in
# target/dashboard-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ ! -x /usr/bin/chromedriver ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium chromium-driver
fi

# A free port on the loopback interface, chosen by the kernel.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="$(mktemp -t chromedriver.XXXXXX.log)"

/usr/bin/chromedriver --port="$port" --allowed-ips=127.0.0.1 >"$log" 2>&1 &
driver_pid=$!
stop_driver() {
    kill "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
}
trap stop_driver EXIT

# Wait (bounded) until chromedriver answers its status endpoint.
ready=""
for _ in $(seq 1 100); do
    if ! kill -0 "$driver_pid" 2>/dev/null; then
        echo "chromedriver exited on start:" >&2
        cat "$log" >&2
        exit 1
    fi
    if python3 - "$port" <<'EOF' 2>/dev/null; then
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/status", timeout=2) as r:
    sys.exit(0 if json.load(r)["value"]["ready"] else 1)
EOF
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "chromedriver is not ready on 127.0.0.1:$port after 10 s:" >&2
    cat "$log" >&2
    exit 1
fi
echo "chromedriver ready on 127.0.0.1:$port ($(/usr/bin/chromedriver --version))"

export KONSTACKS_WEBDRIVER_URL="http://127.0.0.1:$port"
cargo build --locked --bin konstacks
cargo test --locked --test dashboard_browser -- --ignored --nocapture --test-threads=1

echo "dashboard screenshots: $(pwd)/target/dashboard-screenshots/"
ls -1 target/dashboard-screenshots/*.png
