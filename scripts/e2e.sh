#!/usr/bin/env bash
# Browser end-to-end test of the dashboard: real headless Chromium (Debian's) driven by
# playwright-core, against real simcast servers on 127.0.0.1 (e2e/dashboard.test.mjs).
#
# On a fresh Debian machine it installs what is missing: Chromium (and Node.js) from
# apt, the npm dependencies with `npm ci` (e2e/package-lock.json), then builds the
# server and runs the test. Exits non-zero when anything fails. Screenshots land in
# e2e/screenshots/; the full-dashboard one is also copied to docs/dashboard.png.
#
# Environment: CHROMIUM_PATH (default /usr/bin/chromium), SIMCAST_BIN (default: the
# debug binary this script builds), E2E_TIMEOUT seconds (default 240).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
missing=()
[ -x "$CHROMIUM_PATH" ] || missing+=(chromium)
{ command -v node && command -v npm; } >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "e2e: installing ${missing[*]} from apt" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y "${missing[@]}"
  CHROMIUM_PATH=/usr/bin/chromium
fi
export CHROMIUM_PATH

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "e2e: Node.js >= 18 is required, found $(node --version)" >&2
  exit 1
fi

# npm ci only when the installed tree is missing or older than the lockfile.
if [ ! -f e2e/node_modules/.package-lock.json ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  (cd e2e && npm ci --no-audit --no-fund)
fi

if [ -z "${SIMCAST_BIN:-}" ]; then
  cargo build --locked
  SIMCAST_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/simcast"
fi
export SIMCAST_BIN
# The cluster test runs a gateway against a real nats-server.
if [ -z "${SIMCAST_NATS_SERVER:-}" ]; then
  SIMCAST_NATS_SERVER="$(scripts/install-nats.sh)"
fi
export SIMCAST_NATS_SERVER

cd e2e
node --test-reporter=spec unit.test.mjs
# Run the file directly (not through `node --test`, which would put it in a child
# process): a timeout's SIGTERM then reaches the process that owns the servers, which
# kills them by pid on the way out.
exec timeout --kill-after=10 "${E2E_TIMEOUT:-240}" node --test-reporter=spec dashboard.test.mjs
