#!/usr/bin/env python3
"""Prints the ansible-core that the project's images pin (`ansible: {core: X.Y.Z}` in
images/*.yml), so that make setup's .venv (syntax checks, tests) runs the same Ansible as the
images. Prints nothing when no image pins one; exits 1 when images pin different ones.

usage: scripts/ansible-pin.py PROJECT_DIR
"""
import glob
import os
import re
import sys

try:
    import yaml
except ImportError:  # a fresh machine: Debian's python3 may lack PyYAML
    yaml = None

FLOW = re.compile(r'^ansible:\s*\{\s*core:\s*["\']?([0-9]+\.[0-9]+\.[0-9]+)["\']?\s*\}', re.M)
BLOCK = re.compile(r'^ansible:\s*\n\s+core:\s*["\']?([0-9]+\.[0-9]+\.[0-9]+)["\']?\s*$', re.M)


def pin_of(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if yaml is not None:
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            return None  # parbake reports a bad image file itself
        core = (doc.get("ansible") or {}).get("core") if isinstance(doc, dict) else None
        return str(core) if core else None
    m = FLOW.search(text) or BLOCK.search(text)
    return m.group(1) if m else None


def main():
    project = sys.argv[1] if len(sys.argv) > 1 else "."
    pins = {}
    for path in sorted(glob.glob(os.path.join(project, "images", "*.yml"))):
        pin = pin_of(path)
        if pin:
            pins.setdefault(pin, []).append(os.path.relpath(path, project))
    if len(pins) > 1:
        sys.exit("images pin different ansible-core versions (%s); the project's .venv can follow one"
                 % "; ".join("%s in %s" % (v, ", ".join(f)) for v, f in sorted(pins.items())))
    if pins:
        print(next(iter(pins)))


if __name__ == "__main__":
    main()
