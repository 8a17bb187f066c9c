# shellcheck shell=bash
# Sourced by scripts/bench.sh: the `cluster` scenario (issue 11, docs/cluster.md).
#
# 1. One standalone process with CLUSTER_CLIENTS clients (200 characters).
# 2. The same total split over two gateways (nats-server, one sim node, two gateways,
#    each with a port and data directory of its own), two load generators at once, plus
#    100 clients on the sim node itself: their p50 against the gateways' clients' is
#    the latency the NATS hop adds, measured in the same run.
# 3. One step past one process's socket limit: 2 gateways x 15 000 clients.
# CPU per process (sim node, each gateway, nats-server) is read from /proc around the
# measured window. Everything on 127.0.0.1; every process is stopped by its PID.
#
# Uses from bench.sh / bench-side-by-side.sh: OUT ROOT SERVER LOAD PORT, stop_pid,
# sim_config, loadavg_check, json.

CLUSTER_CLIENTS="${CLUSTER_CLIENTS:-10000}"
CLUSTER_BIG="${CLUSTER_BIG:-15000}"
CLUSTER_WINDOW="${CLUSTER_WINDOW:-20}"
# The tick rate of step 3. At 10 Hz, 30 000 clients are 300 000 frames/s, more than
# this 2-core machine can write while it also runs the two load generators (measured,
# BENCHMARKS.md "Cluster"); the step runs at 10 Hz and again at this rate.
CLUSTER_BIG_TICK_RATE="${CLUSTER_BIG_TICK_RATE:-3}"
CLUSTER_PIDS=()

# cpu_ticks PID: utime + stime of PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# node_config NAME ROLE NATS_URL: a node's config (sim_config plus a [cluster] section).
node_config() {
    sim_config "$1" 200 "$CLUSTER_BIG"
    printf '[cluster]\nrole = "%s"\nnats_url = "%s"\n' "$2" "$3" >> "$OUT/$1.toml"
}

# start_node NAME: starts simcast on the next port with $OUT/NAME.toml; sets NODE_PID
# and NODE_PORT (globals: no subshell, so PORT and CLUSTER_PIDS stay this shell's).
start_node() {
    PORT=$((PORT + 1))
    RUST_LOG=warn "$SERVER" --config "$OUT/$1.toml" --bind "127.0.0.1:$PORT" \
        > "$OUT/$1.server.log" 2>&1 &
    NODE_PID=$!
    NODE_PORT=$PORT
    CLUSTER_PIDS+=("$NODE_PID")
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "node $1 did not start" >&2
    return 1
}

# start_nats: nats-server with JetStream on the next port and its own store; sets
# NATS_PID and NATS_URL.
start_nats() {
    local bin port
    bin="$("$ROOT/scripts/install-nats.sh")" || return 1
    PORT=$((PORT + 1)); port=$PORT
    mkdir -p "$OUT/data/nats"
    "$bin" -js -a 127.0.0.1 -p "$port" -sd "$OUT/data/nats" > "$OUT/nats.log" 2>&1 &
    NATS_PID=$!
    NATS_URL="nats://127.0.0.1:$port"
    CLUSTER_PIDS+=("$NATS_PID")
    for _ in $(seq 1 100); do
        grep -q "Server is ready" "$OUT/nats.log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nats-server did not start" >&2
    return 1
}

stop_cluster() {
    for pid in "${CLUSTER_PIDS[@]}"; do stop_pid "$pid"; done
    CLUSTER_PIDS=()
}

# load_at NAME PORT PID CLIENTS: one load generator in the background (its PID in
# LOAD_BG); sized so every client is connected before the measured window.
load_at() {
    local name="$1" port="$2" pid="$3" n="$4"
    local d=$(( CLUSTER_WINDOW + n / 2000 + 4 ))
    cut -d' ' -f1-3 /proc/loadavg > "$OUT/$name.loadavg"
    timeout 150 "$LOAD" --url "ws://127.0.0.1:$port/ws" --token bench --server-pid "$pid" \
        --clients "$n" --connect-rate 2000 --duration "$d" --warmup 2 --sources 2 --quiet \
        > "$OUT/$name.json" 2> "$OUT/$name.progress" &
    LOAD_BG=$!
}

# window_cpu NAME PID...: average cores of each PID over the next measured window
# (starting when the connect phase of CLUSTER_CLIENTS is over), into NAME.cpu.
window_cpu() {
    local name="$1"; shift
    local before=() after=() tck
    tck=$(getconf CLK_TCK)
    sleep $(( $1 / 2000 + 5 )); shift
    for pid in "$@"; do before+=("$(cpu_ticks "$pid")"); done
    sleep "$CLUSTER_WINDOW"
    for pid in "$@"; do after+=("$(cpu_ticks "$pid")"); done
    : > "$OUT/$name.cpu"
    for i in "${!before[@]}"; do
        awk -v a="${before[$i]}" -v b="${after[$i]}" -v t="$tck" -v w="$CLUSTER_WINDOW" \
            'BEGIN { printf "%.2f\n", (b - a) / t / w }' >> "$OUT/$name.cpu"
    done
}

cluster_bench() {
    loadavg_check
    local n="$CLUSTER_CLIENTS" half=$(( CLUSTER_CLIENTS / 2 ))
    # 1. standalone
    sim_config "cl-standalone-$n" 200 "$n"
    start_node "cl-standalone-$n"
    load_at "cl-standalone-$n" "$NODE_PORT" "$NODE_PID" "$n"; local l1=$LOAD_BG
    window_cpu "cl-standalone-$n" "$n" "$NODE_PID"
    wait "$l1" || true
    stop_cluster
    # 2. the same total over two gateways, plus 100 clients on the sim node
    start_nats
    local npid=$NATS_PID
    node_config "cl-sim" sim "$NATS_URL"; node_config "cl-gw1" gateway "$NATS_URL"
    node_config "cl-gw2" gateway "$NATS_URL"
    start_node "cl-sim"; local spid=$NODE_PID sport=$NODE_PORT
    start_node "cl-gw1"; local g1=$NODE_PID p1=$NODE_PORT
    start_node "cl-gw2"; local g2=$NODE_PID p2=$NODE_PORT
    sleep 2
    load_at "cl-gw1-$half" "$p1" "$g1" "$half"; local a=$LOAD_BG
    load_at "cl-gw2-$half" "$p2" "$g2" "$half"; local b=$LOAD_BG
    load_at "cl-sim-100" "$sport" "$spid" 100; local c=$LOAD_BG
    window_cpu "cl-split-$n" "$half" "$spid" "$g1" "$g2" "$npid"
    wait "$a" "$b" "$c" || true
    # 2b. the hop alone: 100 clients on a gateway and 100 on the sim node, nothing else
    load_at "cl-hop-gw1-100" "$p1" "$g1" 100; a=$LOAD_BG
    load_at "cl-hop-sim-100" "$sport" "$spid" 100; b=$LOAD_BG
    wait "$a" "$b" || true
    # 3. past one process: 2 x CLUSTER_BIG on the same cluster, at 10 Hz, then slower
    for rate in 10 "$CLUSTER_BIG_TICK_RATE"; do
        curl -sf -X POST -H "Authorization: Bearer bench-op" -H "Content-Type: application/json" \
            -d "{\"cmd\":\"set_speed\",\"args\":{\"tick_rate\":$rate}}" \
            "http://127.0.0.1:$sport/api/command" > /dev/null || true
        load_at "cl-gw1-$CLUSTER_BIG-${rate}hz" "$p1" "$g1" "$CLUSTER_BIG"; a=$LOAD_BG
        load_at "cl-gw2-$CLUSTER_BIG-${rate}hz" "$p2" "$g2" "$CLUSTER_BIG"; b=$LOAD_BG
        window_cpu "cl-big-$CLUSTER_BIG-${rate}hz" "$CLUSTER_BIG" "$spid" "$g1" "$g2" "$npid"
        wait "$a" "$b" || true
    done
    stop_cluster
    cluster_table "$CLUSTER_BIG_TICK_RATE" | tee "$OUT/cluster.md"
}

# The cluster.md table from the runs' summaries.
cluster_table() {
    python3 - "$OUT" "$CLUSTER_CLIENTS" "$CLUSTER_BIG" "$1" <<'PY'
import json, os, sys
out, n, big, slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
half = n // 2
def run(name):
    p = os.path.join(out, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
def cpu(name):
    p = os.path.join(out, name + ".cpu")
    return open(p).read().split() if os.path.exists(p) else []
def row(label, r, cores):
    if r is None:
        return f"| {label} | (no result) |"
    c, l, k, rt = r["connections"], r["latency_ms"], r["continuity"], r["rates"]
    return (f"| {label} | {r['clients']} | {c['ok']} / {c['failed']} | {l['p50']:.1f} | {l['p99']:.1f} "
            f"| {rt['frames_per_s'] / max(r['clients'], 1):.2f} | {k['readers_with_batches']} "
            f"| {k['seq_gaps']} | {cores} |")
print("## Cluster: one standalone process vs two gateways (200 characters)\n")
print("| run | clients | ok / failed | p50 ms | p99 ms | frames/s/client | clients that got batches | seq gaps | cores |")
print("|---|---|---|---|---|---|---|---|---|")
print(row("standalone", run(f"cl-standalone-{n}"), " ".join(cpu(f"cl-standalone-{n}"))))
split = cpu(f"cl-split-{n}") + ["?"] * 4
print(row("gateway 1", run(f"cl-gw1-{half}"), split[1]))
print(row("gateway 2", run(f"cl-gw2-{half}"), split[2]))
print(row("sim node's own clients", run("cl-sim-100"), f"{split[0]} (sim node); nats-server {split[3]}"))
print(row("hop: 100 on gateway 1 alone", run("cl-hop-gw1-100"), ""))
print(row("hop: 100 on the sim node, same time", run("cl-hop-sim-100"), ""))
for rate in ["10", slow]:
    bigc = cpu(f"cl-big-{big}-{rate}hz") + ["?"] * 4
    print(row(f"{rate} Hz, 2 x gateways: gateway 1", run(f"cl-gw1-{big}-{rate}hz"), bigc[1]))
    print(row(f"{rate} Hz, 2 x gateways: gateway 2", run(f"cl-gw2-{big}-{rate}hz"),
              f"{bigc[2]}; sim node {bigc[0]}, nats-server {bigc[3]}"))
sim, gw = run("cl-hop-sim-100"), run("cl-hop-gw1-100")
if sim and gw:
    print(f"\nThe NATS hop (100 clients on each, same time, nothing else running): p50 "
          f"{gw['latency_ms']['p50']:.1f} ms on a gateway against {sim['latency_ms']['p50']:.1f} ms "
          f"on the sim node, p99 {gw['latency_ms']['p99']:.1f} against {sim['latency_ms']['p99']:.1f} ms.")
PY
}
