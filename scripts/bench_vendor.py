#!/usr/bin/env python3
"""parbake benchmark: `plan` with large vendored collections (make bench-vendor; make bench runs it
first). Not a test: it prints figures, medians of BENCH_RUNS runs (default 7), in one run.

On a copy of the example project it vendors Debian's community.general (821 files) and
ansible.posix (from .tools/ansible-collections, which `make setup` unpacks), then times
`parbake plan web`:
  - without requirements.yml (the baseline);
  - cold: vendored, with the content-hash cache removed before each run;
  - warm: vendored, with the cache in place;
and prints each as a ratio to the baseline, with the size of the vendored collections on
disk and as the archive the base layer's payload carries.

Optional: BENCH_PIN=X.Y.Z also bakes the web stack's base layer twice on the local VM target,
without and with `ansible: {core: X.Y.Z}`, and prints the extra bake time of the pin (slow:
two real bakes).
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
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
BUILT = os.path.join(REPO, "target", "debug", "parbake")
COLLECTIONS = os.path.join(REPO, ".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections")


def run(parbake, project, *args, env=None):
    t0 = time.monotonic()
    out = subprocess.run([parbake, *args], cwd=project, env=dict(os.environ, **(env or {})),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        sys.exit("bench: parbake %s failed (exit %d):\n%s" % (" ".join(args), out.returncode, out.stderr.decode()))
    return out.stdout, wall


def copy_project(to):
    for d in ("images", "roles", "packer", "scripts"):
        shutil.copytree(os.path.join(REPO, d), os.path.join(to, d), symlinks=True)


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


def file_count(path):
    return sum(len(files) for _, _, files in os.walk(path))


def timed_plans(parbake, project, before=None):
    times = []
    for _ in range(RUNS):
        if before:
            before()
        _, wall = run(parbake, project, "plan", "web", "--format", "json")
        times.append(wall)
    return statistics.median(times)


def bench_plan(parbake, work):
    project = os.path.join(work, "project")
    copy_project(project)
    base = timed_plans(parbake, project)
    with open(os.path.join(project, "requirements.yml"), "w") as f:
        f.write("collections:\n")
        for c in ("community/general", "ansible/posix"):
            f.write("  - name: %s\n    type: dir\n" % os.path.join(COLLECTIONS, c))
    run(parbake, project, "vendor", env={"PARBAKE_ANSIBLE_GALAXY": os.path.join(REPO, ".venv/bin/ansible-galaxy")})
    cache = os.path.join(project, "vendor", ".parbake-hash-cache.json")

    def drop_cache():
        if os.path.exists(cache):
            os.unlink(cache)

    cold = timed_plans(parbake, project, drop_cache)
    run(parbake, project, "plan", "web")  # fills the cache
    warm = timed_plans(parbake, project)
    trees = os.path.join(project, "vendor", "collections")
    archive = os.path.join(work, "collections.tar.gz")
    subprocess.run(["tar", "-czf", archive, "-C", trees, "ansible_collections"], check=True)
    print("plan web, median of %d runs each (debug build):" % RUNS)
    print("  %-44s %7.3f s  1.00x" % ("no requirements.yml", base))
    print("  %-44s %7.3f s  %.2fx" % ("vendored collections, cold (no hash cache)", cold, cold / base))
    print("  %-44s %7.3f s  %.2fx" % ("vendored collections, warm (hash cache)", warm, warm / base))
    print("  warm/cold: %.2f" % (warm / cold))
    print("vendored collections: community.general + ansible.posix, %d files, %.1f MB on disk, %.1f MB as the payload archive"
          % (file_count(trees), du(trees) / 1e6, os.path.getsize(archive) / 1e6))


def bench_pin(parbake, work, pin):
    store = os.path.join(work, "store")
    times = {}
    for label, extra in (("distribution's ansible-core", ""), ("ansible-core %s pinned" % pin, 'ansible: {core: "%s"}\n' % pin)):
        project = os.path.join(work, "pin-" + ("yes" if extra else "no"))
        copy_project(project)
        if extra:
            with open(os.path.join(project, "images", "debian12.yml"), "a") as f:
                f.write(extra)
        out, _ = run(parbake, project, "bake", "web", "--json", env={"PARBAKE_STORE": store})
        layer = json.loads(out)["layers"][0]
        if layer["outcome"] != "baked":
            sys.exit("bench: the base layer was %s, not baked" % layer["outcome"])
        times[label] = layer["duration_s"]
    (a, ta), (b, tb) = times.items()
    print("base layer bake (one run each, local VM):")
    print("  %-32s %7.1f s" % (a, ta))
    print("  %-32s %7.1f s  (+%.1f s, %.2fx)" % (b, tb, tb - ta, tb / ta))


def main():
    if not os.path.isdir(COLLECTIONS):
        sys.exit("bench: %s is missing: run `make setup`" % COLLECTIONS)
    work = tempfile.mkdtemp(prefix="parbake-bench-vendor-", dir=os.path.join(REPO, "target"))
    parbake = os.path.join(work, "parbake")
    shutil.copy2(BUILT, parbake)
    try:
        bench_plan(parbake, work)
        pin = os.environ.get("BENCH_PIN")
        if pin:
            bench_pin(parbake, work, pin)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
