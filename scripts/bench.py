#!/usr/bin/env python3
"""parbake benchmark on the local VM target (make bench). Not a test: it prints figures.

For the web stack it measures, in one run, the median of BENCH_RUNS runs (default 3) of:
  - boot-to-ready with no roles at launch (the floor), nothing promoted, half promoted
    (nginx, python) and everything promoted (nginx, webapp; identity is launch-only);
  - bake times: the base layer, each stack layer, and a cache-hit bake;
  - where each launch's time went (the runner's breakdown: boot to runner, ansible start,
    facts, roles, handlers), medians per part;
and gives each launch figure as a ratio to the floor. A layer is re-baked by removing it
from the bench's own store (target/bench-store), so only that layer's bake is timed.

Then it checks `plan --budget` against reality: with the budget halfway between the "all
promoted" and "half promoted" medians (or BENCH_BUDGET seconds), it asks parbake for a
recommendation from the timing ledger those runs filled, bakes it, launches it BENCH_RUNS
times, and prints estimate against measured (the target: within +-25% and within budget).
Last, the wall time of `bake --all` on the unchanged tree (the nightly no-op).

BENCH_ONLY=launch measures only the launches of the floor and of the fully promoted stack
(baking what is not cached, untimed): the quick before/after for a change to the runner or
to the launch's Ansible settings.

The binary is copied first, so rebuilding parbake during a bench does not change it.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE = os.environ.get("BENCH_STORE", os.path.join(REPO, "target", "bench-store"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LAUNCH_ONLY = os.environ.get("BENCH_ONLY") == "launch"
BUILT = os.path.join(REPO, "target", "debug", "parbake")
PARBAKE = os.path.join(REPO, "target", "bench-parbake")
HALF = ["--promote", "nginx", "--promote", "python"]
ALL = ["--promote", "nginx", "--promote", "webapp"]


def parbake(*args, ok=(0,)):
    env = dict(os.environ, PARBAKE_STORE=STORE)
    t0 = time.monotonic()
    out = subprocess.run([PARBAKE, *args, "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE)
    wall = time.monotonic() - t0
    if out.returncode not in ok:
        sys.exit("bench: parbake %s failed (exit %d)" % (" ".join(args), out.returncode))
    return json.loads(out.stdout), wall


def drop_layer(report, index):
    layer = report["layers"][index - 1]
    shutil.rmtree(os.path.join(STORE, "images", layer["hash"]), ignore_errors=True)


def timed_bake(index, *flags):
    """Bake time of layer `index`: a real bake, removing a cached copy first if there is one."""
    rep, _ = parbake("bake", "web", *flags)
    if rep["layers"][index - 1]["outcome"] != "baked":
        drop_layer(rep, index)
        rep, _ = parbake("bake", "web", *flags)
    return rep["layers"][index - 1]["duration_s"]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    if not os.path.exists(BUILT):
        sys.exit("bench: build parbake first (cargo build)")
    shutil.copy2(BUILT, PARBAKE)
    os.makedirs(STORE, exist_ok=True)
    bakes = {"base layer": [], "stack layer, half promoted": [], "stack layer, all promoted": [],
             "cache hit (both layers)": []}
    boots = {"floor (no roles)": [], "nothing promoted": [], "half promoted": [], "all promoted": []}
    roles_at_launch = {}
    timings = {name: [] for name in boots}
    cases = (("floor (no roles)", ["--no-roles"]), ("nothing promoted", []),
             ("half promoted", HALF), ("all promoted", ALL))
    if LAUNCH_ONLY:
        cases = (cases[0], cases[3])
        boots = {name: [] for name, _ in cases}
        bakes = {}
        parbake("bake", "web", *ALL)
    for run in range(1, RUNS + 1):
        print("bench: run %d of %d" % (run, RUNS), file=sys.stderr, flush=True)
        if not LAUNCH_ONLY:
            bake_round(bakes)
        for name, flags in cases:
            rep, _ = parbake("launch", "web", *flags)
            boots[name].append(rep["boot_to_ready_s"])
            if rep["status"].get("timing"):
                timings[name].append(rep["status"]["timing"])
            roles_at_launch[name] = len([r for r in rep["status"]["roles"] if r["status"] == "ok"])
    accel = rep["accelerator"]
    floor = median(boots["floor (no roles)"])
    print("\nparbake bench: web stack, local VM target (%s), %d run(s), medians" % (accel, RUNS))
    print("\n%-28s %8s %8s %14s  %s" % ("boot-to-ready", "median", "x floor", "roles at boot", "runs"))
    for name, xs in boots.items():
        print("%-28s %7.1fs %7.2fx %14d  %s" % (name, median(xs), median(xs) / floor,
                                                 roles_at_launch.get(name, 0),
                                                 " ".join("%.1f" % x for x in xs)))
    breakdown(timings)
    if bakes:
        print("\n%-28s %8s %8s  %s" % ("bake", "median", "x floor", "runs"))
    for name, xs in bakes.items():
        print("%-28s %7.2fs %7.3fx  %s" % (name, median(xs), median(xs) / floor, " ".join("%.2f" % x for x in xs)))

    if not LAUNCH_ONLY:
        budget_check(boots)
        noop_bake_all()


def bake_round(bakes):
    """One run's bake times: each layer baked for real, then the cache hit."""
    bakes["base layer"].append(timed_bake(1))
    for name, flags in (("half promoted", HALF), ("all promoted", ALL)):
        bakes["stack layer, " + name].append(timed_bake(2, *flags))
    _, wall = parbake("bake", "web", *ALL)
    bakes["cache hit (both layers)"].append(round(wall, 2))


TIMING = (("boot_to_runner_s", "boot->runner"), ("runner_to_playbook_s", "runner->ansible"),
          ("playbook_start_s", "ansible start"), ("facts_s", "facts"), ("roles_s", "roles"),
          ("handlers_s", "handlers"), ("other_s", "other"))


def breakdown(timings):
    """Where each launch's time went (the runner's `timing` in status.json), medians per part."""
    rows = [(name, ts) for name, ts in timings.items() if ts]
    if not rows:
        print("\n(no launch breakdown: the image's runner predates it)")
        return
    print("\n%-28s" % "where the time went" + "".join(" %15s" % label for _, label in TIMING))
    for name, ts in rows:
        cells = []
        for key, _ in TIMING:
            xs = [t[key] for t in ts if t.get(key) is not None]
            cells.append(" %14.1fs" % median(xs) if xs else " %15s" % "-")
        print("%-28s" % name + "".join(cells))


def budget_check(boots):
    """plan --budget from this bench's ledger, then the recommendation baked and launched."""
    budget = float(os.environ.get("BENCH_BUDGET") or
                   round((median(boots["all promoted"]) + median(boots["half promoted"])) / 2))
    rep, _ = parbake("plan", "web", "--budget", "%gs" % budget, ok=(0, 1))
    rec = rep.get("recommended")
    print("\nplan --budget %.0fs (ledger: %d launches, %d bakes)" % (
        budget, rep["ledger_launches"], rep["ledger_bakes"]))
    if not rec:
        print("  no recommendation: fastest estimate %.1fs" % rep["fastest"]["estimate_s"])
        return
    flags = []
    for r in rec["promote"]:
        flags += ["--promote", r]
    parts = " + ".join("%s %.1f" % (r, f["seconds"]) for r, f in rec["launch"])
    print("  recommended: %s -> estimate %.1fs (floor %.1f + %s)" % (
        " ".join(flags) or "no change", rec["estimate_s"], rec["floor"]["seconds"], parts))
    parbake("bake", "web", *flags)
    measured = []
    for _ in range(RUNS):
        launched, _ = parbake("launch", "web", *flags)
        measured.append(launched["boot_to_ready_s"])
    m = median(measured)
    dev = (m - rec["estimate_s"]) / rec["estimate_s"] * 100
    print("  measured boot-to-ready: %.1fs median (%s)" % (m, " ".join("%.1f" % x for x in measured)))
    print("  estimate vs measured: %+.1f%% (target +-25%%: %s); within the %.0fs budget: %s" % (
        dev, "yes" if abs(dev) <= 25 else "NO", budget, "yes" if m <= budget else "NO"))


def noop_bake_all():
    walls = []
    for _ in range(5):
        rep, wall = parbake("bake", "--all")
        walls.append(wall)
    c = rep["counts"]
    print("\nbake --all, unchanged tree: %.3fs median wall (%s); %d cached, %d baked" % (
        median(walls), " ".join("%.3f" % w for w in walls), c["cached"], c["baked"]))


if __name__ == "__main__":
    main()
