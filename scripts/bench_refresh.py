#!/usr/bin/env python3
"""What a role edit costs the nightly `bake --all` on the local VM target (make bench-refresh;
also the end of make bench). Not a test: it prints figures, measured in one run.

A copy of the example project (web promoting nginx and webapp, worker promoting worker, as in
docs/notes/bake-all-2026-11-27.txt), with its own store, at `-j 2`:
  1. `bake --all --force`: a full rebake of every layer (the reference);
  2. one file of role `worker` edited: `bake --all` (worker's layer rebakes; the base and web
     layers only carry worker's files, so their run is cached and they are refreshed);
  3. one file of launch-only role `identity` edited: `bake --all` (no run layer rebakes);
  4. the no-op `bake --all` and `bake --all --dry-run` on the unchanged tree.
It prints the total bake seconds (the sum over layers, what a pipeline pays for) and the wall
time of each, the ratios of 2 and 3 to 1, and each stack layer's store size against the base
layer's. BENCH_REFRESH_RUNS (default 1) repeats 2 and 3 with fresh edits and gives medians.

The binary is copied first, so rebuilding parbake during a bench does not change it.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = os.path.join(REPO, "target", "debug", "parbake")
PARBAKE = os.path.join(REPO, "target", "bench-refresh-parbake")
RUNS = int(os.environ.get("BENCH_REFRESH_RUNS", "1"))


def run(project, store, *args, ok=(0,)):
    env = dict(os.environ, PARBAKE_STORE=store)
    env.pop("PARBAKE_PROJECT", None)
    t0 = time.monotonic()
    out = subprocess.run([PARBAKE, *args, "--json"], cwd=project, env=env,
                         stdout=subprocess.PIPE)
    wall = time.monotonic() - t0
    if out.returncode not in ok:
        sys.exit("bench-refresh: parbake %s failed (exit %d)" % (" ".join(args), out.returncode))
    return json.loads(out.stdout), wall


def bake_all(project, store, *flags):
    rep, wall = run(project, store, "bake", "--all", "-j", "2", *flags)
    seconds = sum(l["duration_s"] for l in rep["layers"])
    outcomes = {l["name"]: l["outcome"] for l in rep["layers"]}
    why = {l["name"]: "; ".join(l["why"]) for l in rep["layers"] if l["why"]}
    return rep, seconds, wall, outcomes, why


def copy_project(dest):
    for d in ("images", "roles", "packer", "scripts"):
        shutil.copytree(os.path.join(REPO, d), os.path.join(dest, d))
    for name, promote in (("web", "[nginx, webapp]"), ("worker", "[worker]")):
        path = os.path.join(dest, "images", "stacks", name + ".yml")
        text = open(path).read()
        if "promote: []" not in text:
            sys.exit("bench-refresh: %s has no `promote: []` to replace" % path)
        open(path, "w").write(text.replace("promote: []", "promote: %s" % promote))


def edit(project, role, n):
    """Appends a harmless task to the role's tasks/main.yml: one file of the role changes."""
    path = os.path.join(project, "roles", role, "tasks", "main.yml")
    with open(path, "a") as f:
        f.write("\n- name: bench edit %d\n  ansible.builtin.debug:\n    msg: bench edit %d\n"
                % (n, n))


def disk_mib(store, layer_hash):
    path = os.path.join(store, "images", layer_hash, "disk.qcow2")
    return os.stat(path).st_blocks * 512 / 2**20


def show(label, seconds, wall, outcomes, why):
    print("%-34s %8.1f s of bakes, %7.1f s wall" % (label, seconds, wall))
    for name in sorted(outcomes):
        print("    %-10s %-16s %s" % (outcomes[name], name, why.get(name, "")))


def main():
    if not os.path.exists(BUILT):
        sys.exit("bench-refresh: build parbake first (make build)")
    shutil.copy2(BUILT, PARBAKE)
    # a short path: Packer 1.6.6's plugin sockets live under the build directory's temp dir
    work = tempfile.mkdtemp(prefix="pb-refresh-")
    project, store = os.path.join(work, "project"), os.path.join(work, "store")
    os.makedirs(project)
    copy_project(project)
    print("bench-refresh: project copy %s, store %s, -j 2, %d run(s) of each edit"
          % (project, store, RUNS))

    _, full, full_wall, outcomes, why = bake_all(project, store, "--force")
    show("full rebake (bake --all --force)", full, full_wall, outcomes, why)

    worker, identity = [], []
    for n in range(RUNS):
        edit(project, "worker", n)
        _, secs, wall, outcomes, why = bake_all(project, store)
        show("one file of role worker edited", secs, wall, outcomes, why)
        if outcomes.get("debian12-web") == "baked":
            print("    NOTE: the web run layer was rebaked")
        worker.append(secs)
        edit(project, "identity", n)
        rep, secs, wall, outcomes, why = bake_all(project, store)
        show("one file of role identity edited", secs, wall, outcomes, why)
        if "baked" in outcomes.values():
            print("    NOTE: a run layer was rebaked")
        identity.append(secs)

    noop = [bake_all(project, store)[2] for _ in range(3)]
    dry = [run(project, store, "bake", "--all", "--dry-run")[1] for _ in range(3)]

    print("\nsummary (median of %d run(s) of each edit; the full rebake once):" % RUNS)
    w, i = statistics.median(worker), statistics.median(identity)
    print("  full rebake          %8.1f s of bakes" % full)
    print("  role worker edited   %8.1f s of bakes  %.2fx of the full rebake (target <= 0.5x)"
          % (w, w / full))
    print("  role identity edited %8.1f s of bakes  %.2fx of the full rebake (target <= 0.25x)"
          % (i, i / full))
    # each layer's image in the store (a layer no stack launches stands on its run layer)
    layers = {l["name"]: os.path.basename(os.path.dirname(l["image_id"])) for l in rep["layers"]}
    runs = {}
    for name, h in layers.items():
        rec = json.load(open(os.path.join(store, "images", h, "record.json")))
        runs[name] = rec.get("refresh_of") or h
    base = disk_mib(store, runs["debian12"])
    print("  base layer disk      %8.1f MiB" % base)
    for name in sorted(layers):
        if name == "debian12":
            continue
        size = disk_mib(store, runs[name])
        print("  %-20s %8.1f MiB  %.2fx of the base layer (target <= 0.35x)"
              % (name + " (run)", size, size / base))
        if layers[name] != runs[name]:
            print("  %-20s %8.1f MiB  (the refresh overlay on it)"
                  % (name + " (refresh)", disk_mib(store, layers[name])))
    print("  no-op bake --all     %8.3f s wall (median of 3)" % statistics.median(noop))
    print("  bake --all --dry-run %8.3f s wall (median of 3)" % statistics.median(dry))
    print("(the project copy and its store stay in %s; remove them when done)" % work)


if __name__ == "__main__":
    main()
