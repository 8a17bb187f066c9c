#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md: criterion benches, then loopback load runs
# of the real server driven by `simcast-load`. Loopback only; bounded in time (each
# load run <= 45 s, whole script ~10 min); kills only the server PIDs it started.
#
# Usage: scripts/bench.sh [--quick] [--no-criterion] [--only NAME] [NAME]
#   --quick         shorter runs and a shorter client curve (smoke the script itself)
#   --no-criterion  skip `cargo bench`
#   --only NAME     one scenario: criterion|curve|batchsize|idle|idle-empty|tick|stalled|cluster|ab|models|
#                   alloc|side-by-side (alloc: mimalloc vs glibc malloc, back to back;
#                   rebuilds twice). A bare NAME is the same as --only NAME.
#   side-by-side    simcast and the lean baseline broadcaster (../shared/peers/
#                   lean-broadcaster), one after the other, at simcast's measured
#                   per-client event rate and event size: 1 000 / 5 000 / 10 000 clients
#                   with 1 000 characters, 19 000 with 200 (side-by-side.md)
#   idle            10 000 sockets after their join snapshot on a paused world of 200
#                   and of 1 000 characters: RSS per socket (idle.md)
#   idle-empty      19 000 idle sockets on an empty world (the older idle figure)
#   ab              simcast alone at one size, builds alternating (not in the default
#                   run): AB_SERVERS="LABEL=BINARY ..." (default: this build),
#                   AB_CASE=19000:200, AB_REPEAT=3; SERVER_LOG=trace-filter for the
#                   servers' RUST_LOG (e.g. warn,simcast::broker=trace) (ab.md)
#   models          Mesa's own wolf–sheep example (PyPI `mesa` in target/mesa-venv, made
#                   here) against `simcast run --model wolf_sheep`, same params, over
#                   MESA_SEEDS seeds (default 50) and 300 ticks: statistics and steps/s
#                   (models.md; scripts/mesa-wolf-sheep.py). Not in the default run.
#   cluster         one standalone process vs two gateways with the same clients, then
#                   2 gateways x 15 000 clients (cluster.md; docs/cluster.md). Not in
#                   the default run (it needs nats-server: scripts/install-nats.sh)
# Environment knobs, for smoking the script at a tiny scale (never needed otherwise):
#   BENCH_SCALE=0.01  multiply every client count of side-by-side and idle (min 1)
#   WINDOW=3          measured window of side-by-side runs, seconds (default 20)
#   SBS_CASES="100:1000 50:200"  side-by-side cases as CLIENTS:CHARACTERS
#   SBS_REPEAT=3      run each side-by-side pair this many times, alternating simcast
#                     and lean; the table adds the median of the p99 ratios (default 1)
#   IDLE_CLIENTS=100  sockets of the idle runs (before BENCH_SCALE)
#   LEAN_BATCH_MS=200 the lean broadcaster's --batch-ms (default 100, issue 8's setup;
#                     `match`: simcast's measured frame rate in the run before)
# Output: a results directory (printed at the end) with one JSON per load run,
# criterion's output, machine.txt and table.md (the tables BENCHMARKS.md quotes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK=0
CRITERION=1
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-criterion) CRITERION=0 ;;
        --only) ONLY="$2"; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) ONLY="$1" ;;
    esac
    shift
done
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${BENCH_OUT:-$TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
SERVER="$TARGET_DIR/release/simcast"
LOAD="$TARGET_DIR/release/simcast-load"
BASE_PORT="${BENCH_PORT:-18500}"
SERVER_PID=""
LOAD_PID=""

# stop_pid PID: TERM, up to 5 s, then KILL; only ever a PID this script started.
stop_pid() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}
on_exit() {
    stop_pid "$LOAD_PID"
    cleanup
    stop_cluster 2>/dev/null || true
    release_cgroup 2>/dev/null || true
}
trap on_exit EXIT
trap 'exit 130' INT TERM

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "nofile: soft $(ulimit -Sn) hard $(ulimit -Hn)"
    echo "rustc: $(rustc --version)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (work tree may differ)"
    echo "load average (1 5 15 min) at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

if [ "$ONLY" = "models" ]; then
    VENV="$TARGET_DIR/mesa-venv"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    # mesa.examples imports every example, and one of them needs networkx.
    "$VENV/bin/pip" install --quiet mesa networkx >&2
    echo "mesa: $("$VENV/bin/python" -c 'import mesa; print(mesa.__version__)')" | tee -a "$OUT/machine.txt"
    cargo build --release --bin simcast >&2
    "$VENV/bin/python" scripts/mesa-wolf-sheep.py --simcast "$SERVER" \
        --seeds "${MESA_SEEDS:-50}" --ticks 300 --work "$OUT" | tee "$OUT/models.md"
    echo "results: $OUT" >&2
    exit 0
fi

cargo build --release --bin simcast --bin simcast-load >&2

# start_server NAME CHARACTERS BATCH_SIZE: writes a config and starts the server on a
# fresh port (a fresh port per run, so TIME_WAIT sockets of earlier runs never collide)
# with a data directory of its own: the server restores a saved world from its data
# directory, so a shared one would make every run continue the previous run's world
# (its character count and its time of day) instead of a new world of CHARACTERS.
PORT=$BASE_PORT
start_server() {
    local name="$1" chars="$2" batch="$3"
    PORT=$((PORT + 1))
    cat > "$OUT/$name.toml" <<EOF
[auth]
tokens = [ { token = "bench", role = "viewer" } ]
[pool]
max_connections = 20000
[broker]
max_batch_size = $batch
[sim]
characters = $chars
tick_rate = 10.0
[persistence]
dir = "$OUT/data/$name"
EOF
    RUST_LOG=warn "$SERVER" --config "$OUT/$name.toml" --bind "127.0.0.1:$PORT" \
        > "$OUT/$name.server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server for $name did not start" >&2
    return 1
}

# idle_run NAME: 19 000 (quick: 2 000) idle authenticated sockets against an empty world.
idle_run() {
    local n=19000; [ "$QUICK" = 1 ] && n=2000
    start_server "$1-$n" 0 1000
    sleep 1
    load "$1-$n" --clients "$n" --connect-rate 2000 --duration $(( n / 2000 + 12 )) --warmup 5 --sources 2
    cleanup
}

# load NAME ARGS...: one bounded load run against the current server.
load() {
    local name="$1"; shift
    echo "== $name: simcast-load $*" >&2
    # The machine's load average (1, 5, 15 min) before and after: others may share it.
    cut -d' ' -f1-3 /proc/loadavg > "$OUT/$name.loadavg"
    timeout 120 "$LOAD" --url "ws://127.0.0.1:$PORT/ws" --token bench \
        --server-pid "$SERVER_PID" "$@" > "$OUT/$name.json" 2> "$OUT/$name.progress"
    cut -d' ' -f1-3 /proc/loadavg >> "$OUT/$name.loadavg"
    tail -n 2 "$OUT/$name.progress" >&2
}

# shellcheck source=scripts/bench-side-by-side.sh
. "$ROOT/scripts/bench-side-by-side.sh"
# shellcheck source=scripts/bench-cluster.sh
. "$ROOT/scripts/bench-cluster.sh"

# tick_p99 FILE_BEFORE FILE_AFTER: the tick-duration histogram between two scrapes.
metrics() { curl -sf "http://127.0.0.1:$PORT/metrics?token=bench"; }

if [ "$CRITERION" = 1 ] && want criterion; then
    echo "== criterion" >&2
    cut -d' ' -f1-3 /proc/loadavg > "$OUT/criterion.loadavg"
    cargo bench --bench broadcast 2>&1 | tee "$OUT/criterion.txt" \
        | grep -E '^[a-z_]+/|thrpt:|time:|sample batch' >&2
    cut -d' ' -f1-3 /proc/loadavg >> "$OUT/criterion.loadavg"
fi

if [ "$QUICK" = 1 ]; then CURVE="1000 2000"; DUR=12; else CURVE="1000 2000 5000 10000 19000"; DUR=25; fi

if want curve; then
    # 1 000 characters at 10 Hz, default topics; a tick is one batch (max_batch_size
    # 1000 holds a whole tick) so every client gets one frame per tick.
    for n in $CURVE; do
        start_server "curve-$n" 1000 1000
        # 2 000 connections/s; the measured window starts 2 s after the last one.
        d=$(( DUR + n / 2000 ))
        load "curve-$n" --clients "$n" --connect-rate 2000 --duration "$d" --warmup 2 --sources 2
        cleanup
    done
fi

if want batchsize; then
    # The same load with the shipped max_batch_size (100): a tick is cut into several
    # batches, most of them empty for default-topic clients.
    n=5000; [ "$QUICK" = 1 ] && n=1000
    for b in 100 1000; do
        start_server "batch$b-$n" 1000 "$b"
        load "batch$b-$n" --clients "$n" --connect-rate 2000 --duration $(( DUR + n / 2000 )) --warmup 2
        cleanup
    done
fi

if want idle-empty; then
    # 19 000 idle authenticated sockets: no characters, so no batches; RSS per socket =
    # (RSS with the sockets - RSS of the empty server) / sockets.
    idle_run idle
fi

if want side-by-side; then
    side_by_side
fi

if want idle; then
    idle_paused
fi

if [ "$ONLY" = cluster ]; then
    cluster_bench
fi

if [ "$ONLY" = ab ]; then
    ab_runs
fi

if want tick; then
    # 10 000 characters at 10 Hz with 100 clients on the default topics; the server's
    # own tick-duration histogram over a 20 s window.
    start_server "tick-10000" 10000 1000
    sleep 2
    metrics > "$OUT/tick-10000.metrics.before"
    load "tick-10000" --clients 100 --connect-rate 200 --duration 20 --warmup 1
    metrics > "$OUT/tick-10000.metrics.after"
    cleanup
fi

if want stalled; then
    # 5 000 readers, without and then with one client that never reads.
    n=5000; [ "$QUICK" = 1 ] && n=1000
    i=0
    for s in 0 1 0 1; do
        i=$((i + 1))
        start_server "stalled$s-$n-r$i" 1000 1000
        load "stalled$s-$n-r$i" --clients "$n" --stalled "$s" --connect-rate 2000 --duration $(( DUR + n / 2000 )) --warmup 2
        cleanup
    done
fi

if want alloc; then
    # The shipped build (mimalloc) against the same code on glibc's malloc
    # (`--features system-alloc`), back to back: the criterion fan-out and idle sockets.
    echo "== alloc: glibc malloc" >&2
    cargo build --release --features system-alloc --bin simcast >&2
    cp "$SERVER" "$TARGET_DIR/release/simcast-system-alloc"
    cargo bench --features system-alloc --bench broadcast -- fan_out/batched 2>&1 \
        | tee "$OUT/criterion-alloc-glibc.txt" | grep -E 'thrpt:' >&2
    SHIPPED="$SERVER"; SERVER="$TARGET_DIR/release/simcast-system-alloc"
    idle_run idle-glibc
    SERVER="$SHIPPED"
    echo "== alloc: mimalloc (shipped)" >&2
    cargo build --release --bin simcast >&2
    cargo bench --bench broadcast -- fan_out/batched 2>&1 \
        | tee "$OUT/criterion-alloc-mimalloc.txt" | grep -E 'thrpt:' >&2
    idle_run idle-mimalloc
fi

python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import json, os, re, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
def mib(k):
    return "-" if k is None else f"{k/1024:.0f}"
print("## Load runs (" + open(os.path.join(out, "machine.txt")).read().splitlines()[0] + ")\n")
def loadavg(name):
    p = os.path.join(out, name + ".loadavg")
    if not os.path.exists(p): return "-"
    return " → ".join(l.split()[0] for l in open(p).read().splitlines())
print("| run | load avg (1 min, before → after) | clients | ok / failed | ended early | frames/s | items/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | min batches/client | seq gaps | lag p99 (batches) | server CPU % | server RSS MiB (start→max) | loadgen CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
names = sorted((f[:-5] for f in os.listdir(out) if f.endswith(".json")),
               key=lambda n: (re.sub(r"\d+", "", n.split("-")[0]), [int(x) for x in re.findall(r"\d+", n)]))
for n in names:
    r = load(n)
    c, k, l, rt = r["connections"], r["continuity"], r["latency_ms"], r["rates"]
    s, g = r.get("server", {}), r["load_generator"]
    print(f"| {n} | {loadavg(n)} | {r['clients']}{'+'+str(r['stalled_clients'])+' stalled' if r['stalled_clients'] else ''} "
          f"| {c['ok']} / {c['failed']} | {sum(c['ended_early'].values())} "
          f"| {rt['frames_per_s']:.0f} | {rt['items_per_s']:.0f} | {rt['bytes_per_s']/1e6:.1f} "
          f"| {l['p50']:.1f} | {l['p90']:.1f} | {l['p99']:.1f} | {l['max']:.1f} "
          f"| {k['min_batches_per_reader']} | {k['seq_gaps']} | {(k.get('lag_at_end_batches') or {}).get('p99')} "
          f"| {s.get('cpu_pct_avg_measured') or 0:.0f} | {mib(s.get('rss_kib_start'))}→{mib(s.get('rss_kib_max'))} "
          f"| {g.get('cpu_pct_avg_measured') or 0:.0f} |")
for n in names:
    if n.startswith("idle-") and not n.startswith("idle-paused-"):
        r = load(n); s = r["server"]; ok = r["connections"]["ok"]
        per = (s["rss_kib_max"] - s["rss_kib_start"]) / max(ok, 1)
        print(f"\nIdle sockets ({n}): {ok} connected, server RSS {s['rss_kib_start']} KiB empty → "
              f"{s['rss_kib_max']} KiB max: **{per:.2f} KiB per socket**.")
def hist(path):
    b = {}
    for line in open(path):
        m = re.match(r'simcast_tick_duration_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m: b[m.group(1)] = int(m.group(2))
    return b
for n in names:
    if n.startswith("tick-"):
        a, z = hist(os.path.join(out, n + ".metrics.before")), hist(os.path.join(out, n + ".metrics.after"))
        d = {k: z[k] - a.get(k, 0) for k in z}
        total = d.get("+Inf", 0)
        rows = [f"≤{float(k)*1000:g} ms: {100*v/total:.2f}%" for k, v in d.items() if k != "+Inf"] if total else []
        p99 = next((k for k, v in d.items() if total and v >= 0.99 * total), None)
        print(f"\nTick duration ({n}, {total} ticks): p99 ≤ {float(p99)*1000:g} ms; " + ", ".join(rows))
def criterion(file, title):
    crit = os.path.join(out, file)
    if not os.path.exists(crit):
        return
    print(f"\n## {title} (load avg before → after: {loadavg(file[:-4])})\n\n| bench | time (median) | throughput (median) |\n|---|---|---|")
    lines = open(crit).read().splitlines()
    for i, line in enumerate(lines):
        # criterion prints "name  time: [...]" on one line, or the name alone on its own
        # line when it is long, then "time:" and "thrpt:" on the following lines.
        m = re.match(r"^([a-z_]+/\S+)\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
        if m:
            mt = re.search(r"thrpt:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", lines[i + 1]) if i + 1 < len(lines) else None
            print(f"| {m.group(1)} | {m.group(2)} | {mt.group(1) if mt else ''} |")
            continue
        m2 = re.match(r"^([a-z_]+/\S+)\s*$", line)
        if m2 and i + 1 < len(lines):
            m3 = re.search(r"time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", lines[i + 1])
            mt = re.search(r"thrpt:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", lines[i + 2]) if i + 2 < len(lines) else None
            if m3:
                print(f"| {m2.group(1)} | {m3.group(1)} | {mt.group(1) if mt else ''} |")
criterion("criterion.txt", "Criterion")
criterion("criterion-alloc-glibc.txt", "Criterion fan-out, glibc malloc (--features system-alloc)")
criterion("criterion-alloc-mimalloc.txt", "Criterion fan-out, mimalloc (shipped), right after")
PY
for f in side-by-side.md idle.md cluster.md; do
    if [ -f "$OUT/$f" ]; then { echo; cat "$OUT/$f"; } | tee -a "$OUT/table.md"; fi
done
echo "results: $OUT" >&2
