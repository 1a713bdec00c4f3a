#!/usr/bin/env bash
# The AWS backend's tests against a real protocol peer: installs the pinned moto into
# .venv-moto/ (once), starts `moto_server` on a free loopback port, waits until it answers, runs
# the unit tests of the `aws` feature, the moto-backed integration tests (contract suite, web-app
# end to end, the serving kinds and releases in aws_serving, adoption, drift, refresh of 1,000
# instances + 1,000 security groups in a bounded number of calls, crash recovery, IAM policy
# coverage) and the SDK-level scripted tests, then stops moto, whatever happened.
#
# Run with: bash scripts/test-aws.sh            (extra arguments go to the test binaries)
#           KONSTACKS_AWS_BENCH=1 bash scripts/test-aws.sh   (also runs the refresh benchmark)
# Needs: Python 3.9+ with venv and pip (python3.11 preferred), Rust; nothing installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_WHO=test-aws
# shellcheck source=scripts/moto-up.sh
source scripts/moto-up.sh

export KONSTACKS_MOTO_ENDPOINT="$ENDPOINT"
# The binary on AWS: images pinned from the command line (tests/aws_cli.rs).
cargo test --features aws,s3-state --locked --test aws_cli --test remote_state_cli -- "$@"
# `spaces` too: the same features as the Spaces tests of test-digitalocean.sh, which then reuse
# this build instead of compiling the AWS SDK crates a second time.
cargo test -p konstacks-providers --features aws,s3-state,spaces --locked --lib --test aws_moto --test aws_serving --test aws_scripted --test s3_state --test aws_drift --test aws_refresh_calls --test aws_crash --test templates_aws -- "$@"

if [ "${KONSTACKS_AWS_BENCH:-0}" = "1" ]; then
    cargo run -p konstacks-providers --features aws --locked --example aws_refresh_bench
fi
