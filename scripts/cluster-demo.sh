#!/usr/bin/env bash
# A cluster on this machine (docs/cluster.md): nats-server with JetStream on a free
# loopback port with a store directory of its own, one sim node and two gateways, each
# with a data directory of its own under one scratch directory. Prints both gateways'
# dashboard URLs; Ctrl-C (or the end of DEMO_SECONDS, if set) stops everything it
# started, by PID.
#
# Usage: scripts/cluster-demo.sh [--characters N]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CHARACTERS=300
[ "${1:-}" = "--characters" ] && CHARACTERS="$2"

NATS="$(scripts/install-nats.sh)"
cargo build --release --bin simcast >&2
SIMCAST="${CARGO_TARGET_DIR:-$ROOT/target}/release/simcast"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/simcast-cluster.XXXXXX")"
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stopped; logs and data in $WORK" >&2
}
trap stop_all EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
NATS_PORT="$(free_port)"
[ "$NATS_PORT" = 4222 ] && NATS_PORT="$(free_port)"
mkdir -p "$WORK/nats"
"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" > "$WORK/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
    (echo > "/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
    sleep 0.1
done

TOKEN="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# node ROLE PORT: starts one simcast node; its config and data under $WORK/ROLE-PORT.
node() {
    local role="$1" port="$2" dir="$WORK/$1-$2"
    mkdir -p "$dir"
    cat > "$dir/config.toml" <<TOML
[[auth.tokens]]
token = "$TOKEN"
role = "operator"
name = "demo"
[sim]
characters = $CHARACTERS
[persistence]
dir = "$dir/data"
[cluster]
role = "$role"
nats_url = "nats://127.0.0.1:$NATS_PORT"
TOML
    "$SIMCAST" --config "$dir/config.toml" --bind "127.0.0.1:$port" > "$dir/stdout.log" 2> "$dir/server.log" &
    PIDS+=($!)
}
SIM_PORT="$(free_port)"; GW1_PORT="$(free_port)"; GW2_PORT="$(free_port)"
node sim "$SIM_PORT"
node gateway "$GW1_PORT"
node gateway "$GW2_PORT"
sleep 1
echo "nats-server: nats://127.0.0.1:$NATS_PORT (store $WORK/nats)"
echo "sim node:    http://127.0.0.1:$SIM_PORT/?token=$TOKEN"
echo "gateway 1:   http://127.0.0.1:$GW1_PORT/?token=$TOKEN"
echo "gateway 2:   http://127.0.0.1:$GW2_PORT/?token=$TOKEN"
echo "Ctrl-C stops all four." >&2
if [ -n "${DEMO_SECONDS:-}" ]; then
    sleep "$DEMO_SECONDS"
else
    wait
fi
