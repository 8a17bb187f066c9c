#!/usr/bin/env python3
"""Mesa's own wolf-sheep example against `simcast run --model wolf_sheep`.

Runs Mesa's `WolfSheep` (imported from the installed `mesa` package, never copied) at
its defaults for TICKS steps over SEEDS seeds, then simcast's headless wolf_sheep with
the same params over the same number of seeds on one thread, one after the other.
Prints a Markdown report: sheep and wolf counts (mean and standard deviation across
seeds) at several ticks, when each species died out, and steps per second of each with
the load average next to them, over all the ticks and over the first EARLY ticks only. Run by `scripts/bench.sh models`, which makes the venv.

Usage: python mesa-wolf-sheep.py --simcast target/release/simcast [--seeds 50]
       [--ticks 300] [--work DIR]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

# Mesa 3's wolf-sheep defaults (WolfSheep.__init__); simcast's are the same, and
# they are passed explicitly so that a change on either side shows up here.
PARAMS = {
    "width": 20,
    "height": 20,
    "initial_sheep": 100,
    "initial_wolves": 50,
    "sheep_reproduce": 0.04,
    "wolf_reproduce": 0.05,
    "wolf_gain_from_food": 20,
    "grass": True,
    "grass_regrowth_time": 30,
    "sheep_gain_from_food": 4,
}
REPORT_TICKS = [0, 1, 5, 10, 25, 50, 100, 200, 300]
EARLY = 20


def loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_mesa(seeds, ticks):
    """Trajectories [(sheep, wolf, grass) per tick] per seed, and seconds stepping."""
    from mesa.examples.advanced.wolf_sheep.model import WolfSheep
    from mesa.experimental.devs import ABMSimulator

    runs, stepping = [], 0.0
    for seed in range(1, seeds + 1):
        simulator = ABMSimulator()
        model = WolfSheep(simulator=simulator, seed=seed, **PARAMS)
        started = time.perf_counter()
        simulator.run_for(ticks)
        stepping += time.perf_counter() - started
        frame = model.datacollector.get_model_vars_dataframe()
        rows = [(int(r.Sheep), int(r.Wolves), int(r.Grass)) for r in frame.itertuples()]
        if len(rows) != ticks + 1:
            sys.exit(f"mesa seed {seed}: {len(rows)} rows, expected {ticks + 1}")
        runs.append(rows)
    return runs, stepping


def run_simcast(binary, seeds, ticks, work):
    """Trajectories per seed, the seconds `simcast run` reports for its runs, the
    process's whole wall time (start, runs, CSV written), and the command."""
    out = os.path.join(work, f"simcast-wolf-sheep-{ticks}-ticks.csv")
    command = [binary, "run", "--model", "wolf_sheep", "--ticks", str(ticks),
               "--out", out, "--sweep", f"seed=1..{seeds}", "--threads", "1"]
    for key, value in PARAMS.items():
        command += ["--set", f"{key}={int(value) if isinstance(value, bool) else value}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    match = re.search(r"in ([0-9.]+) s", done.stderr)
    if not match:
        sys.exit(f"simcast run printed no timing: {done.stderr}")
    runs = {}
    with open(out) as f:
        header = f.readline().strip()
        if header != "run,tick,sheep,wolf,grass":
            sys.exit(f"unexpected header {header}")
        for line in f:
            run, _tick, sheep, wolf, grass = (int(x) for x in line.split(","))
            runs.setdefault(run, []).append((sheep, wolf, grass))
    return [runs[k] for k in sorted(runs)], float(match.group(1)), wall, " ".join(command)


def extinction(runs, column):
    """(runs where the species died out, the ticks it did)."""
    ticks = []
    for rows in runs:
        tick = next((t for t, row in enumerate(rows) if row[column] == 0), None)
        if tick is not None:
            ticks.append(tick)
    return ticks


def spread(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(mesa, simcast, seeds):
    print(f"\n| tick | species | Mesa mean ± sd | simcast mean ± sd | |Δmean| / pooled sd |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for tick in [t for t in REPORT_TICKS if t < len(mesa[0])]:
        for column, name in ((0, "sheep"), (1, "wolf"), (2, "grass")):
            m_mean, m_sd = spread([rows[tick][column] for rows in mesa])
            s_mean, s_sd = spread([rows[tick][column] for rows in simcast])
            pooled = ((m_sd ** 2 + s_sd ** 2) / 2) ** 0.5
            ratio = abs(m_mean - s_mean) / pooled if pooled > 0 else 0.0
            if name != "grass":
                worst = max(worst, ratio)
            print(f"| {tick} | {name} | {m_mean:.1f} ± {m_sd:.1f} | {s_mean:.1f} ± {s_sd:.1f} | {ratio:.2f} |")
    print(f"\nLargest |Δmean| / pooled sd over sheep and wolves: {worst:.2f}"
          f" ({'within' if worst <= 1 else 'OUTSIDE'} the spread between seeds)")
    print("\n| species | side | died out in | at tick (min / median / max) |")
    print("|---|---|---|---|")
    for column, name in ((0, "sheep"), (1, "wolf")):
        for side, runs in (("Mesa", mesa), ("simcast", simcast)):
            ticks = extinction(runs, column)
            when = (f"{min(ticks)} / {statistics.median(ticks):g} / {max(ticks)}"
                    if ticks else "-")
            print(f"| {name} | {side} | {len(ticks)} of {seeds} | {when} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--simcast", required=True)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--work", default=".")
    args = parser.parse_args()
    if args.seeds < 20:
        sys.exit("--seeds: at least 20")
    import mesa

    load_before = loadavg()
    mesa_runs, mesa_secs = run_mesa(args.seeds, args.ticks)
    load_mid = loadavg()
    simcast_runs, simcast_secs, simcast_wall, command = run_simcast(
        args.simcast, args.seeds, args.ticks, args.work)
    load_after = loadavg()
    # The same again over the first EARLY ticks only, while both species are alive
    # (most runs have no sheep left by tick 30, and an empty step costs little).
    early_load = loadavg()
    _, mesa_early = run_mesa(args.seeds, EARLY)
    _, simcast_early, _, _ = run_simcast(args.simcast, args.seeds, EARLY, args.work)
    steps = args.seeds * args.ticks
    print(f"## Wolf–sheep: Mesa {mesa.__version__} vs simcast, {args.seeds} seeds × "
          f"{args.ticks} ticks\n")
    print(f"simcast: `{command}`\n")
    print("| side | steps | seconds stepping | steps/s | load avg (1 5 15) before |")
    print("|---|---|---|---|---|")
    print(f"| Mesa (one Python thread) | {steps} | {mesa_secs:.3f} | "
          f"{steps / mesa_secs:.0f} | {load_before} |")
    print(f"| simcast (one thread) | {steps} | {simcast_secs:.3f} | "
          f"{steps / max(simcast_secs, 1e-9):.0f} | {load_mid} |")
    print(f"| simcast, whole process (start, runs, CSV written) | {steps} | "
          f"{simcast_wall:.3f} | {steps / simcast_wall:.0f} | {load_mid} |")
    print(f"\nsimcast / Mesa steps per second: {mesa_secs / max(simcast_secs, 1e-9):.0f}x"
          f" stepping, {mesa_secs / simcast_wall:.0f}x counting simcast's whole process"
          f" (load avg after: {load_after})")
    early = args.seeds * EARLY
    print(f"\nFirst {EARLY} ticks only (both species alive; load avg before: {early_load}):"
          f" Mesa {early / mesa_early:.0f} steps/s, simcast {early / max(simcast_early, 1e-9):.0f}"
          f" steps/s, {mesa_early / max(simcast_early, 1e-9):.0f}x.")
    report(mesa_runs, simcast_runs, args.seeds)


if __name__ == "__main__":
    main()
