#!/usr/bin/env bash
# The GCP backend's tests against the in-process fake of Compute Engine v1 and Cloud SQL Admin v1
# (konstacks-providers/tests/common_gcp). The fake checks every request and response against
# Google's discovery documents, which ship inside the pinned google-api-python-client wheel: this
# script installs that wheel into .venv-gcp/ (once), points KONSTACKS_GCP_DISCOVERY_DIR at its
# documents and runs the tests of the `gcp` feature.
#
# Run with: bash scripts/test-gcp.sh            (extra arguments go to the test binaries)
# Needs: Python 3.9+ with venv and pip (python3.11 preferred), Rust; nothing installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KONSTACKS_GCP_VENV:-.venv-gcp}"
REQUIREMENTS=scripts/requirements-gcp.txt
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TESTS=(--lib --test gcp_fake --test gcp_contract --test gcp_load_balancer --test gcp_web_app --test gcp_crash --test templates_gcp)

source scripts/venv.sh
# (Re)install when the venv is missing or does not hold exactly the pinned version.
pinned="$(grep -Eo '^google-api-python-client==[0-9.]+' "$REQUIREMENTS")"
ensure_venv test-gcp "$VENV" "$REQUIREMENTS" "$pinned"

DOCS="$("$VENV/bin/python" -c "import googleapiclient, os; print(os.path.join(os.path.dirname(googleapiclient.__file__), 'discovery_cache', 'documents'))")"
for doc in compute.v1.json sqladmin.v1.json dns.v1.json storage.v1.json redis.v1.json; do
    if [ ! -f "$DOCS/$doc" ]; then
        echo "test-gcp: $DOCS/$doc is missing from $pinned" >&2
        exit 1
    fi
done
echo "test-gcp: discovery documents of $pinned in $DOCS"

export KONSTACKS_GCP_DISCOVERY_DIR="$DOCS"
cargo test -p konstacks-providers --features gcp --locked "${TESTS[@]}" -- "$@"
