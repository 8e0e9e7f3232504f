#!/usr/bin/env python3
"""parbake benchmark on the local target (make bench). Not a test: it prints figures.

First, at native speed (`launch --container`: the layer's own systemd, cloud-init and launch
runner in systemd-nspawn, offline), the median of BENCH_RUNS runs (default 3) of:
  - boot-to-ready of the floor (a stack with no launch roles and no checks on the base layer,
    in a copy of the project), nothing promoted, half promoted (nginx, python) and all
    promoted (nginx, webapp; identity is launch-only);
  - the runner's breakdown per launch: boot to runner, runner to ansible, ansible start,
    facts, each role, handlers, checks, the rest;
  - parbake's own added seconds: boot-to-ready over the floor less the roles' own task time
    (ansible start, facts, handlers, checks, the runner), and the whole launch over the floor.
The layers are baked first if the store lacks them (untimed). BENCH_ONLY=native stops there.

Then the same under TCG in VMs, the table's second part. For the web stack it measures, in
one run, the median of BENCH_RUNS runs (default 3) of:
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

BENCH_ONLY=launch measures only the VM launches of the floor and of the fully promoted stack
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
NATIVE_ONLY = os.environ.get("BENCH_ONLY") == "native"
FLOOR_PROJECT = os.path.join(REPO, "target", "bench-floor")
BUILT = os.path.join(REPO, "target", "debug", "parbake")
PARBAKE = os.path.join(REPO, "target", "bench-parbake")
HALF = ["--promote", "nginx", "--promote", "python"]
ALL = ["--promote", "nginx", "--promote", "webapp"]


def parbake(*args, ok=(0,), project=REPO):
    env = dict(os.environ, PARBAKE_STORE=STORE)
    t0 = time.monotonic()
    out = subprocess.run([PARBAKE, "--project", project, *args, "--json"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE)
    wall = time.monotonic() - t0
    if out.returncode not in ok or not out.stdout.strip():
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
    native_bench()
    if NATIVE_ONLY:
        return
    print("\n--- the same under TCG, in VMs ---", flush=True)
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
    print("\nparbake bench, part 2: web stack, local VM target (%s), %d run(s), medians" % (accel, RUNS))
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


NATIVE_CASES = (("floor (no roles)", "floor", []), ("nothing promoted", "web", []),
                ("half promoted", "web", HALF), ("all promoted", "web", ALL))
NATIVE_TIMING = (("boot_to_runner_s", "boot->runner"), ("runner_to_playbook_s", "runner->ansible"),
                 ("playbook_start_s", "ansible start"), ("facts_s", "facts"))
NATIVE_TAIL = (("handlers_s", "handlers"), ("checks_s", "checks"), ("other_s", "other"))


def floor_project():
    """A copy of the project with one more stack: `floor`, on the same image, with no launch
    roles and no checks (the boot floor: systemd, cloud-init and the runner's no-op)."""
    shutil.rmtree(FLOOR_PROJECT, ignore_errors=True)
    for d in ("images", "roles", "packer", "scripts", "vendor"):
        if os.path.isdir(os.path.join(REPO, d)):
            shutil.copytree(os.path.join(REPO, d), os.path.join(FLOOR_PROJECT, d), symlinks=True)
    for f in ("requirements.yml", "requirements.lock.json"):
        if os.path.isfile(os.path.join(REPO, f)):
            shutil.copy2(os.path.join(REPO, f), FLOOR_PROJECT)
    with open(os.path.join(FLOOR_PROJECT, "images", "stacks", "floor.yml"), "w") as f:
        f.write("# bench only: the boot floor, no launch roles and no checks\n"
                "image: debian12\ndescription: the boot floor\nroles: []\npromote: []\n"
                "vars: {}\nlaunch_vars: {}\n")


def project_of(stack):
    return FLOOR_PROJECT if stack == "floor" else REPO


def native_bench():
    """Part 1: the launches at native speed, in systemd-nspawn (`launch --container`)."""
    floor_project()
    for _, stack, flags in NATIVE_CASES:
        parbake("bake", stack, *flags, project=project_of(stack))
    boots = {name: [] for name, _, _ in NATIVE_CASES}
    timings = {name: [] for name in boots}
    roles = {name: {} for name in boots}
    for run in range(1, RUNS + 1):
        print("bench: native run %d of %d" % (run, RUNS), file=sys.stderr, flush=True)
        for name, stack, flags in NATIVE_CASES:
            rep, _ = parbake("launch", stack, *flags, "--container", project=project_of(stack),
                             ok=(0, 1))
            if rep["status"]["state"] != "done":
                sys.exit("bench: the native launch of %s failed: %s" % (name, rep["status"].get("error")))
            boots[name].append(rep["boot_to_ready_s"])
            timings[name].append(rep["status"].get("timing") or {})
            for r in rep["status"]["roles"]:
                if r["status"] == "ok":
                    roles[name].setdefault(r["name"], []).append(r.get("duration_s") or 0.0)
    native_report(boots, timings, roles)


def native_report(boots, timings, roles):
    floor = median(boots["floor (no roles)"])
    print("\nparbake bench, part 1: web stack, native (systemd-nspawn, offline), %d run(s), medians"
          % RUNS)
    print("\n%-20s %8s %8s %9s %9s %7s  %s" % ("boot-to-ready", "median", "x floor", "over floor",
                                               "parbake+", "roles", "runs"))
    for name, xs in boots.items():
        # per run: its boot-to-ready over the floor's median, less its roles' own time
        own = [x - floor - sum(v[i] for v in roles[name].values() if i < len(v))
               for i, x in enumerate(xs)]
        print("%-20s %7.2fs %7.2fx %8.2fs %8.2fs %7d  %s" % (
            name, median(xs), median(xs) / floor, median(xs) - floor, median(own),
            len(roles[name]), " ".join("%.2f" % x for x in xs)))
    print("(over floor: the launch's cost over the floor; parbake+: per run, that less the roles' "
          "own task time (handlers included), i.e. the runner, ansible's start, facts and checks)")
    names = sorted({r for rs in roles.values() for r in rs},
                   key=lambda r: ["nginx", "python", "webapp", "identity"].index(r)
                   if r in ("nginx", "python", "webapp", "identity") else 9)
    cols = list(NATIVE_TIMING) + [(n, n) for n in names] + list(NATIVE_TAIL)
    print("\n%-20s" % "where the time went" + "".join(" %13s" % label for _, label in cols))
    for name in boots:
        cells = []
        for key, _ in cols:
            if key in names:
                xs = roles[name].get(key, [])
            else:
                xs = [t[key] for t in timings[name] if t.get(key) is not None]
            cells.append(" %12.2fs" % median(xs) if xs else " %13s" % "-")
        print("%-20s" % name + "".join(cells))


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
