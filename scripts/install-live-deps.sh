#!/usr/bin/env bash
# Server binaries for the live mode's real local databases and caches (tests/live_dev.rs):
# Debian's PostgreSQL 15 and Redis. The packages' own services are not needed (each test starts
# throwaway servers of its own on free loopback ports), so nothing is started here.
set -euo pipefail

have_pg() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if have_pg && command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
    && command -v psql >/dev/null 2>&1; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Where no init system runs (containers, CI) the packages do not start their own services.
$sudo apt-get install -y -qq postgresql redis-server redis-tools >/dev/null
