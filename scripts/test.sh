#!/usr/bin/env bash
# The whole test suite: unit and integration tests (real servers on 127.0.0.1:0,
# determinism, persistence across SIGTERM/SIGKILL, TLS, property tests, a load-generator
# smoke run), then the dashboard in real headless Chromium. On a fresh machine the
# browser step installs what it needs (Chromium from apt, npm ci in e2e/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets --locked "$@"
# `cargo test` has built target/debug/simcast; the e2e script reuses it.
./scripts/e2e.sh
