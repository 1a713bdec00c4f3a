#!/usr/bin/env bash
# DigitalOcean backend tests, held to DigitalOcean's own OpenAPI description: the stateful fake
# (test code, served on a free local port by each test process) runs behind Prism in proxy mode
# with --errors, so every request the client sends and every answer the fake gives is validated
# and any violation fails the tests. Spaces buckets (the `spaces` feature) send their S3 calls to
# a real moto server (scripts/moto-up.sh), their DigitalOcean calls through Prism. Needs Node 20
# + npm, Python 3 and Rust; makes no network call except to the npm and PyPI registries the first
# time (Prism is installed under .tools/prism, moto under .venv-moto).
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=../shared/specs/digitalocean/openapi.yaml
PRISM_VERSION=5.14.2
PRISM_DIR=.tools/prism
PRISM="$PRISM_DIR/node_modules/.bin/prism"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ ! -f "$SPEC" ]; then
  echo "error: $SPEC is missing; check the repository out beside shared/" >&2
  exit 1
fi
if [ "$("$PRISM" --version 2>/dev/null || true)" != "$PRISM_VERSION" ]; then
  echo "installing @stoplight/prism-cli@$PRISM_VERSION into $PRISM_DIR"
  npm install --prefix "$PRISM_DIR" --no-audit --no-fund --loglevel=error "@stoplight/prism-cli@$PRISM_VERSION"
fi

TESTS=(--lib --test digitalocean_client --test digitalocean_contract --test digitalocean_dns --test digitalocean_web_app --test digitalocean_docs --test templates_digitalocean)
# Spaces buckets (the `spaces` feature): their S3 calls go to a real moto server, since
# DigitalOcean's OpenAPI description does not describe the S3 API; their DigitalOcean calls go
# through Prism like every other test's.
# The features of test-aws.sh's build, so that its artifacts serve here too.
SPACES_TESTS=(--features aws,s3-state,spaces --test digitalocean_spaces)
# Build first, so that Prism is not kept waiting behind the compiler.
cargo test -p konstacks-providers --features digitalocean --locked "${TESTS[@]}" --no-run
cargo test -p konstacks-providers --locked "${SPACES_TESTS[@]}" --no-run

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
FAKE_PORT=$(free_port)
PRISM_PORT=$(free_port)
PRISM_LOG=$(mktemp -t prism-digitalocean.XXXXXX.log)

"$PRISM" proxy -h 127.0.0.1 -p "$PRISM_PORT" "$SPEC" "http://127.0.0.1:$FAKE_PORT" --errors >"$PRISM_LOG" 2>&1 &
PRISM_PID=$!
stop_prism() {
  kill "$PRISM_PID" 2>/dev/null || true
  wait "$PRISM_PID" 2>/dev/null || true
}
trap stop_prism EXIT
MOTO_WHO=test-digitalocean
# shellcheck source=scripts/moto-up.sh
source scripts/moto-up.sh
trap 'stop_prism; stop_moto' EXIT

for _ in $(seq 1 240); do
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$PRISM_PORT" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$PRISM_PID" 2>/dev/null; then
    echo "error: Prism exited; its log:" >&2
    cat "$PRISM_LOG" >&2
    exit 1
  fi
  sleep 0.5
done
echo "Prism $PRISM_VERSION on 127.0.0.1:$PRISM_PORT validating against $SPEC; the fake serves 127.0.0.1:$FAKE_PORT"

status=0
KONSTACKS_DO_FAKE_PORT=$FAKE_PORT \
KONSTACKS_DO_PRISM_URL="http://127.0.0.1:$PRISM_PORT" \
KONSTACKS_DO_REQUIRE_PRISM=1 \
  cargo test -p konstacks-providers --features digitalocean --locked "${TESTS[@]}" -- --test-threads=1 || status=$?
KONSTACKS_DO_FAKE_PORT=$FAKE_PORT \
KONSTACKS_DO_PRISM_URL="http://127.0.0.1:$PRISM_PORT" \
KONSTACKS_DO_REQUIRE_PRISM=1 \
KONSTACKS_MOTO_ENDPOINT="$ENDPOINT" \
  cargo test -p konstacks-providers --locked "${SPACES_TESTS[@]}" -- --test-threads=1 || status=$?

# What Prism saw: every request it validated, and the answers it refused (the client test
# `contract_violations_surface_as_errors` corrupts one answer on purpose; every other test
# asserts it met no violation).
requests=$(grep -c "Request received" "$PRISM_LOG" || true)
violations=$(grep -c "VIOLATIONS" "$PRISM_LOG" || true)
echo "prism: $requests requests validated against $SPEC, $violations answer(s) refused as contract violations"

if [ "$status" -ne 0 ]; then
  echo "--- Prism errors (full log: $PRISM_LOG) ---" >&2
  grep -E "error|violation" "$PRISM_LOG" | tail -n 40 >&2 || true
else
  rm -f "$PRISM_LOG"
fi
exit "$status"
