#!/usr/bin/env bash
# The whole test suite: unit, integration (real servers on 127.0.0.1:0), determinism.
# Installs anything the tests need that a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets --locked "$@"
