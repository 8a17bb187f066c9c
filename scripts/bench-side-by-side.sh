# shellcheck shell=bash
# Sourced by scripts/bench.sh: the `side-by-side` and `idle` scenarios.
#
# side-by-side: simcast and the lean baseline broadcaster measured by the same load
# generator, one server at a time, each alone with its own data directory and port.
# The lean broadcaster is given simcast's per-client event rate and mean event size as
# simcast-load measured them in the simcast run just before, so both deliver the same
# stream and the ratios compare servers, not workloads. It batches every 100 ms, as in
# issue 8's setup (simcast's own frame rate at 10 Hz); LEAN_BATCH_MS=match gives it
# simcast's measured frame rate instead (fewer frames while simcast staggers).
# idle: RSS per socket on a paused world, after each socket got its join snapshot, so
# the figure is what a connected-but-quiet client costs at that world size.
# ab: simcast alone at one size, several builds alternating, one run after the other,
# with the same config, clients and window as the side-by-side simcast runs: how the
# A/B figures of BENCHMARKS.md (pacing variants at 19 000 clients) are made.
#
# Uses from bench.sh: OUT ROOT TARGET_DIR SERVER LOAD PORT SERVER_PID LOAD_PID,
# stop_pid, cleanup.

LEAN_MANIFEST="${LEAN_MANIFEST:-$ROOT/../shared/peers/lean-broadcaster/Cargo.toml}"
LEAN_TARGET="$TARGET_DIR/lean-broadcaster"
LEAN="$LEAN_TARGET/release/lean-broadcaster"
SCALE="${BENCH_SCALE:-1}"
WINDOW="${WINDOW:-20}"
WARMUP=2
SOURCES=4

# scaled N: N times BENCH_SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }

# json FILE EXPR: one value from a simcast-load summary (python expression on `r`).
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

# loadavg_check: print the load average; warn when the machine is already busy.
loadavg_check() {
    local one cores
    one=$(cut -d' ' -f1 /proc/loadavg)
    cores=$(nproc)
    echo "load average (1 5 15 min): $(cut -d' ' -f1-3 /proc/loadavg) on $cores cores" >&2
    if awk -v l="$one" -v c="$cores" 'BEGIN { exit !(l > c / 2) }'; then
        echo "warning: the machine is busy (1-min load $one); absolute figures will be low" >&2
    fi
}

# nofile_ok N: whether N sockets (plus slack) fit this shell's open-file limit.
nofile_ok() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $(( $1 + 200 )) ]
}

# sim_config NAME CHARACTERS CLIENTS: a config file with its own data directory.
sim_config() {
    local name="$1" chars="$2" clients="$3"
    local max=$(( clients + 1000 > 20000 ? clients + 1000 : 20000 ))
    cat > "$OUT/$name.toml" <<TOML
[auth]
tokens = [ { token = "bench", role = "viewer" }, { token = "bench-op", role = "operator" } ]
[pool]
max_connections = $max
[sim]
characters = $chars
tick_rate = 10.0
[persistence]
dir = "$OUT/data/$name"
TOML
}

# wait_port PID: until 127.0.0.1:$PORT accepts (10 s at most) and PID still runs.
wait_port() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# SERVER_CPU_QUOTA=CORES (e.g. 0.6): every server this file starts runs in a cgroup of
# its own with that CPU quota (10 ms periods, so throttling is fine-grained), to see
# how both servers behave on a slower machine. The same quota for both; off by default.
# Needs root and the cgroup v1 cpu controller (/sys/fs/cgroup/cpu).
CPU_CGROUP=""
confine() {
    [ -n "${SERVER_CPU_QUOTA:-}" ] || return 0
    if [ -z "$CPU_CGROUP" ]; then
        CPU_CGROUP="/sys/fs/cgroup/cpu/simcast-bench-$$"
        mkdir -p "$CPU_CGROUP" || { echo "no cgroup for SERVER_CPU_QUOTA" >&2; exit 1; }
        echo 10000 > "$CPU_CGROUP/cpu.cfs_period_us"
        awk -v c="$SERVER_CPU_QUOTA" 'BEGIN { printf "%d\n", c * 10000 }' \
            > "$CPU_CGROUP/cpu.cfs_quota_us"
        echo "servers confined to $SERVER_CPU_QUOTA cores ($CPU_CGROUP)" >&2
    fi
    echo "$1" > "$CPU_CGROUP/cgroup.procs"
}
release_cgroup() {
    [ -n "$CPU_CGROUP" ] && rmdir "$CPU_CGROUP" 2>/dev/null
    CPU_CGROUP=""
}

# start_simcast NAME CHARACTERS CLIENTS
start_simcast() {
    PORT=$((PORT + 1))
    sim_config "$1" "$2" "$3"
    RUST_LOG="${SERVER_LOG:-warn}" "$SERVER" --config "$OUT/$1.toml" \
        --bind "127.0.0.1:$PORT" > "$OUT/$1.server.log" 2>&1 &
    SERVER_PID=$!
    confine "$SERVER_PID"
    wait_port "$SERVER_PID" || { echo "simcast for $1 did not start" >&2; return 1; }
}

# start_lean NAME EVENTS SIZE BATCH_MS
start_lean() {
    PORT=$((PORT + 1))
    "$LEAN" --port "$PORT" --events "$2" --size "$3" --batch-ms "$4" \
        > "$OUT/$1.server.log" 2>&1 &
    SERVER_PID=$!
    confine "$SERVER_PID"
    wait_port "$SERVER_PID" || { echo "lean broadcaster for $1 did not start" >&2; return 1; }
}

# measure NAME CLIENTS DURATION ARGS...: one bounded simcast-load run, in the
# background so a signal reaches the trap at once.
measure() {
    local name="$1" clients="$2" duration="$3"; shift 3
    echo "== $name: $clients clients, ${duration}s" >&2
    cut -d' ' -f1-3 /proc/loadavg > "$OUT/$name.loadavg"
    timeout $(( duration + 60 )) "$LOAD" --url "ws://127.0.0.1:$PORT/ws" --token bench \
        --server-pid "$SERVER_PID" --clients "$clients" --connect-rate 2000 \
        --sources "$SOURCES" --duration "$duration" "$@" \
        > "$OUT/$name.json" 2> "$OUT/$name.progress" &
    LOAD_PID=$!
    wait "$LOAD_PID" || echo "simcast-load for $name failed (rc $?)" >&2
    LOAD_PID=""
    cut -d' ' -f1-3 /proc/loadavg >> "$OUT/$name.loadavg"
    tail -n 1 "$OUT/$name.progress" >&2
}

build_lean() {
    echo "== building the lean broadcaster ($LEAN_MANIFEST)" >&2
    timeout 1800 cargo build --release --locked --manifest-path "$LEAN_MANIFEST" \
        --target-dir "$LEAN_TARGET" >&2
}

# side_by_side_case CLIENTS CHARACTERS [RUN]: simcast, then the lean broadcaster fed
# from it. RUN 1 (the default) writes sbs-N-C-*, a later one sbs-N-C-rRUN-*.
side_by_side_case() {
    local tag="sbs-$1-$2"
    [ "${3:-1}" -gt 1 ] && tag="$tag-r$3"
    local n="$1" chars="$2" sim="$tag-simcast" lean="$tag-lean"
    local duration=$(( (n + 1999) / 2000 + WARMUP + WINDOW ))
    if ! nofile_ok "$n"; then
        echo "skipping $n clients: open-file limit $(ulimit -n) is too low" >&2
        return 0
    fi
    start_simcast "$sim" "$chars" "$n"
    measure "$sim" "$n" "$duration" --warmup "$WARMUP"
    cleanup
    [ -s "$OUT/$sim.json" ] || return 0
    # The lean broadcaster's stream, from what simcast delivered per client.
    local events size batch_ms
    events=$(json "$OUT/$sim.json" "max(0.1, round(r['per_client']['events_per_s'], 2))")
    size=$(json "$OUT/$sim.json" "max(1, round(r['per_client']['event_bytes_mean']))")
    # 100 ms batches (issue 8's setup), or with LEAN_BATCH_MS=match the same frames per
    # client per second as simcast sent.
    batch_ms=${LEAN_BATCH_MS:-100}
    if [ "$batch_ms" = match ]; then
        batch_ms=$(json "$OUT/$sim.json" \
            "(lambda f: round(1000 / f) if f > 0.1 else 100)(r['per_client']['frames_per_s'])")
    fi
    echo "$events $size $batch_ms" > "$OUT/$lean.stream"
    start_lean "$lean" "$events" "$size" "$batch_ms"
    measure "$lean" "$n" "$duration" --warmup "$WARMUP" --mode lean
    cleanup
}

side_by_side() {
    loadavg_check
    build_lean
    local cases="${SBS_CASES:-1000:1000 5000:1000 10000:1000 19000:200}" c r
    for c in $cases; do
        for r in $(seq 1 "${SBS_REPEAT:-1}"); do
            side_by_side_case "$(scaled "${c%%:*}")" "${c##*:}" "$r"
        done
    done
    side_by_side_table > "$OUT/side-by-side.md"
}

side_by_side_table() {
    python3 - "$OUT" <<'PY'
import glob, json, os, re, sys
out = sys.argv[1]
def load(p):
    try: return json.load(open(p))
    except (OSError, ValueError): return None
def figures(r):
    if r is None: return None
    s, c, l, pc = r.get("server", {}), r["connections"], r["latency_ms"], r["per_client"]
    return {
        "p50 ms": l["p50"], "p99 ms": l["p99"],
        "server cores": s.get("cores_used_measured") or 0.0,
        "peak RSS/conn KiB": s.get("rss_kib_per_socket_peak") or 0.0,
        "RSS added/conn KiB": s.get("rss_kib_per_socket_added") or 0.0,
        "frames/s": r["rates"]["frames_per_s"], "frames/s/client": pc["frames_per_s"],
        "events delivered": r["totals"]["items_measured"], "events/s/client": pc["events_per_s"],
        "event bytes": pc["event_bytes_mean"], "seq gaps": r["continuity"]["seq_gaps"],
        "never connected": c["never_connected"],
        "ended early": sum(c.get("ended_early", {}).values()),
    }
cols = ["p50 ms", "p99 ms", "server cores", "peak RSS/conn KiB", "RSS added/conn KiB", "frames/s", "frames/s/client",
        "events delivered", "events/s/client", "event bytes", "seq gaps", "never connected", "ended early"]
def cell(v):
    if v is None: return "-"
    return f"{v:.0f}" if isinstance(v, int) or abs(v) >= 100 else f"{v:.2f}"
print("## simcast vs the lean broadcaster, side by side\n")
print("| clients | characters | server | " + " | ".join(cols) + " |")
print("|---|---|---|" + "---|" * len(cols))
runs = {}
for p in glob.glob(os.path.join(out, "sbs-*-simcast.json")):
    m = re.match(r"sbs-(\d+)-(\d+)(-r(\d+))?-simcast\.json$", os.path.basename(p))
    if m:
        runs.setdefault((int(m[1]), int(m[2])), []).append((int(m[4] or 1), p[:-len("-simcast.json")]))
medians = []
for (n, chars), tags in sorted(runs.items()):
    p99_ratios = []
    for run, tag in sorted(tags):
        a, b = figures(load(tag + "-simcast.json")), figures(load(tag + "-lean.json"))
        label = "" if len(tags) == 1 else f" (run {run})"
        for name, f in (("simcast", a), ("lean", b)):
            if f: print(f"| {n} | {chars} | {name}{label} | " + " | ".join(cell(f[k]) for k in cols) + " |")
        if a and b:
            ratio = lambda k: "-" if not isinstance(a[k], (int, float)) or not b[k] else f"{a[k] / b[k]:.2f}"
            print(f"| {n} | {chars} | **simcast/lean**{label} | " + " | ".join(ratio(k) for k in cols) + " |")
            if b["p99 ms"]: p99_ratios.append(a["p99 ms"] / b["p99 ms"])
    if len(p99_ratios) > 1:
        r = sorted(p99_ratios)
        medians.append(f"{n} clients ({chars} characters): median p99 simcast/lean **{r[len(r) // 2] if len(r) % 2 else (r[len(r) // 2 - 1] + r[len(r) // 2]) / 2:.2f}** "
                       f"over {len(r)} runs ({', '.join(f'{x:.2f}' for x in p99_ratios)})")
if medians:
    print("\n" + "\n".join(f"- {m}" for m in medians))
print("\nThe lean broadcaster gets simcast's events/s per client and mean event bytes, and "
      "`--batch-ms` 100 (LEAN_BATCH_MS; `match`: simcast's frames/s per client) "
      "(`NAME.stream`: events size batch_ms). "
      "Its latency counts from each event's scheduled time, so it includes up to batch_ms of "
      "coalescing (about half on average); simcast stamps a tick's items when the tick ran, "
      "so its latency starts at the tick, and a tick staggered by pacing (fewer frames/s per "
      "client) counts its wait. Server cores: average over the measured window; "
      "peak RSS/conn: peak server RSS / connected sockets; RSS added/conn: (peak RSS - RSS "
      "before the first connect) / connected sockets. Frames/s and events delivered count the "
      "measured window only; its length is whole progress seconds and may differ by one "
      "between the two runs, so compare events/s/client rather than events delivered.")
la = sorted(glob.glob(os.path.join(out, "sbs-*.loadavg")))
if la:
    print("\nLoad average (1 min) before → after each run: " + "; ".join(
        f"{os.path.basename(p)[4:-8]} {' → '.join(l.split()[0] for l in open(p).read().splitlines())}" for p in la))
PY
}

# idle_paused_case CHARACTERS SOCKETS: pause the world, connect, read the RSS.
idle_paused_case() {
    local chars="$1" n="$2" name="idle-paused-$1-$2"
    nofile_ok "$n" || { echo "skipping $name: open-file limit too low" >&2; return 0; }
    start_simcast "$name" "$chars" "$n"
    curl -sf --max-time 5 -H "Authorization: Bearer bench-op" -H 'Content-Type: application/json' \
        -d '{"type":"command","id":"1","cmd":"pause","args":{}}' \
        "http://127.0.0.1:$PORT/api/command" > "$OUT/$name.pause.reply"
    sleep 1
    measure "$name" "$n" $(( (n + 1999) / 2000 + 8 )) --warmup 3
    cleanup
}

idle_paused() {
    loadavg_check
    local n chars
    n=$(scaled "${IDLE_CLIENTS:-10000}")
    for chars in 200 1000; do
        idle_paused_case "$chars" "$n"
    done
    python3 - "$OUT" <<'PY' > "$OUT/idle.md"
import glob, json, os, sys
print("## Idle sockets after the join snapshot, paused world\n")
print("| characters | sockets | RSS before connecting MiB | RSS with the sockets MiB | peak MiB | KiB per socket (after) | KiB per socket (peak) |")
print("|---|---|---|---|---|---|---|")
rows = []
for p in glob.glob(os.path.join(sys.argv[1], "idle-paused-*.json")):
    try: r = json.load(open(p))
    except (OSError, ValueError): continue
    s, ok = r.get("server", {}), r["connections"]["ok"]
    chars = int(os.path.basename(p).split("-")[2])
    a, e, m = s.get("rss_kib_start") or 0, s.get("rss_kib_end") or 0, s.get("rss_kib_max") or 0
    rows.append((chars, f"| {chars} | {ok} | {a/1024:.1f} | {e/1024:.1f} | {m/1024:.1f} | {(e-a)/max(ok,1):.1f} | {(m-a)/max(ok,1):.1f} |"))
for _, row in sorted(rows): print(row)
PY
}

# ab_runs: AB_SERVERS="LABEL=BINARY ..." (default: this build, as `head`), each run
# AB_REPEAT times (default 3), alternating, at AB_CASE=CLIENTS:CHARACTERS (default
# 19000:200). Runs are ab-LABEL-rN; the summary is ab.md.
ab_runs() {
    loadavg_check
    local case="${AB_CASE:-19000:200}" shipped="$SERVER" spec r name
    local n chars duration
    n=$(scaled "${case%%:*}")
    chars="${case##*:}"
    duration=$(( (n + 1999) / 2000 + WARMUP + WINDOW ))
    if ! nofile_ok "$n"; then
        echo "skipping $n clients: open-file limit $(ulimit -n) is too low" >&2
        return 0
    fi
    for r in $(seq 1 "${AB_REPEAT:-3}"); do
        for spec in ${AB_SERVERS:-head=$shipped}; do
            name="ab-${spec%%=*}-r$r"
            SERVER="${spec#*=}"
            start_simcast "$name" "$chars" "$n"
            measure "$name" "$n" "$duration" --warmup "$WARMUP"
            cleanup
        done
    done
    SERVER="$shipped"
    ab_table > "$OUT/ab.md"
}

ab_table() {
    python3 - "$OUT" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
rows, p99s = [], {}
for path in sorted(glob.glob(os.path.join(out, "ab-*-r*.json"))):
    m = re.match(r"ab-(.+)-r(\d+)\.json$", os.path.basename(path))
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        continue
    label, run = m.group(1), int(m.group(2))
    lat, pc, s = r["latency_ms"], r["per_client"], r.get("server", {})
    gaps = r.get("continuity", {}).get("seq_gaps")
    p99s.setdefault(label, []).append(lat["p99"])
    rows.append((run, label, lat["p50"], lat["p99"], s.get("cores_used_measured") or 0.0,
                 pc["frames_per_s"], gaps))
print("| run | build | p50 ms | p99 ms | server cores | frames/s/client | seq gaps |")
print("|---|---|---|---|---|---|---|")
for run, label, p50, p99, cores, fps, gaps in sorted(rows):
    print(f"| {run} | {label} | {p50:.0f} | {p99:.0f} | {cores:.2f} | {fps:.2f} | {gaps} |")
print()
for label, v in sorted(p99s.items()):
    print(f"- {label}: p99 {', '.join(f'{x:.0f}' for x in v)} ms, median {statistics.median(v):.0f}")
PY
}
