#!/usr/bin/env python3
"""parbake at scale (make bench-scale, and the last part of make bench). Not a test: it prints
figures.

Generates a synthetic project in a temporary directory: 200 roles in meta-dependency chains
(each role depends on the one before it in its chain of 10), one image on a stand-in local
base disk, and 50 stacks of 8 roles that each promote 3. Then, with the release binary,
the median of BENCH_SCALE_RUNS runs (default 5) of:
  - `plan STACK` (the budget: 50 ms);
  - `bake --all --dry-run` with nothing baked yet (the budget: 1 s);
  - `bake --all --dry-run` and the no-op `bake --all` once every layer is in the store
    (the budget: 1 s each). The layers are "baked" by the stand-in Packer of the fast tier
    (tests/fixtures/fake-packer.py), untimed: only planning, hashing, the store and the
    scheduler are measured.
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_SCALE_RUNS", "5"))
ROLES, CHAIN, STACKS, PER_STACK, PROMOTED = 200, 10, 50, 8, 3
BIN = os.path.abspath(os.environ.get("BENCH_SCALE_BIN", os.path.join(REPO, "target", "release", "parbake")))


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def generate(root):
    """The synthetic project; returns the stack names."""
    shutil.copytree(os.path.join(REPO, "packer"), os.path.join(root, "packer"))
    for i in range(ROLES):
        name = "r%03d" % i
        deps = [] if i % CHAIN == 0 else ["r%03d" % (i - 1)]
        write(root, "roles/%s/tasks/main.yml" % name,
              "- name: %s marker\n  ansible.builtin.debug:\n    msg: %s\n" % (name, name))
        write(root, "roles/%s/defaults/main.yml" % name, "%s_level: %d\n" % (name, i))
        write(root, "roles/%s/meta/main.yml" % name,
              "galaxy_info:\n  author: bench\ndependencies: %s\n" % json.dumps(deps))
    write(root, "roles/base/tasks/main.yml",
          "- name: base marker\n  ansible.builtin.debug:\n    msg: base\n")
    for f in ["disk.qcow2", "vmlinuz", "initrd.img"]:
        write(root, "base/%s" % f, "stand-in\n")
    write(root, "images/scale.yml",
          "sources:\n  qemu:\n    disk_image: base/disk.qcow2\n    ssh_user: debian\n"
          "basic: [base]\n")
    rng = random.Random(15)
    stacks = []
    for s in range(STACKS):
        roles = sorted(rng.sample(range(ROLES), PER_STACK))
        names = ["r%03d" % r for r in roles]
        promote = names[:PROMOTED]
        stack = "s%02d" % s
        stacks.append(stack)
        write(root, "images/stacks/%s.yml" % stack,
              "image: scale\nroles: %s\npromote: %s\n" % (json.dumps(names), json.dumps(promote)))
    return stacks


def timed(root, store, args, ok=(0,)):
    env = dict(os.environ, PARBAKE_STORE=store,
               PARBAKE_PACKER=os.path.join(REPO, "tests", "fixtures", "fake-packer.py"),
               PARBAKE_ACCEL="tcg", FAKE_PACKER_SECONDS="0", FAKE_PACKER_ROLE_SECONDS="")
    env.pop("PARBAKE_PROJECT", None)
    t0 = time.monotonic()
    out = subprocess.run([BIN, *args], cwd=root, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    if out.returncode not in ok:
        sys.exit("bench-scale: parbake %s failed (exit %d):\n%s"
                 % (" ".join(args), out.returncode, out.stderr.decode()[-2000:]))
    return wall, out.stdout


def median_of(root, store, args):
    walls = [timed(root, store, args)[0] for _ in range(RUNS)]
    return statistics.median(walls)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit("bench-scale: %s is missing: cargo build --release" % BIN)
    root = tempfile.mkdtemp(prefix="parbake-scale-")
    store = os.path.join(root, ".store")
    try:
        stacks = generate(root)
        _, out = timed(root, store, ["bake", "--all", "--dry-run", "--json"])
        dry = json.loads(out)
        layers = len(dry["layers"])
        print("bench-scale: %d roles (chains of %d), %d stacks promoting %d of %d roles each:"
              " %d layers; medians of %d runs, release build"
              % (ROLES, CHAIN, STACKS, PROMOTED, PER_STACK, layers, RUNS))
        rows = []
        rows.append(("plan %s" % stacks[0], median_of(root, store, ["plan", stacks[0], "--json"]),
                     0.050))
        rows.append(("bake --all --dry-run (nothing baked)",
                     median_of(root, store, ["bake", "--all", "--dry-run", "--json"]), 1.0))
        t0 = time.monotonic()
        timed(root, store, ["bake", "--all", "-j", "2", "--json"])
        setup = time.monotonic() - t0
        rows.append(("bake --all --dry-run (all cached)",
                     median_of(root, store, ["bake", "--all", "--dry-run", "--json"]), 1.0))
        rows.append(("bake --all, no-op (all cached)",
                     median_of(root, store, ["bake", "--all", "--json"]), 1.0))
        for what, secs, budget in rows:
            verdict = "ok" if secs <= budget else "OVER"
            print("  %-40s %8.3fs  (budget %.3fs: %s)" % (what, secs, budget, verdict))
        print("  (untimed: the %d layers baked by the stand-in Packer in %.1fs)" % (layers, setup))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
