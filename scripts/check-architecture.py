#!/usr/bin/env python3
"""Check what docs/ARCHITECTURE.md says that a script can check (run by `make lint`).

- every external program runs through src/process.rs: no `duct::` anywhere else in src/;
- the printer is the one place that writes to the terminal: no `println!`, `print!`,
  `eprintln!` or `eprint!` outside src/printer.rs and src/printer/;
- no import circle in src/ (scripts/import-cycles.py --check);
- commit subjects since 121a55f are at most 72 characters.

Each violation is printed as `file:line: rule: text`; the exit code is 1 if any is not allowed.

Allowed for now: scripts/architecture-allow.txt lists `RULE PATH COUNT` lines (up to COUNT
violations of RULE in PATH are reported as `allowed` and do not fail the check; one more
does). It is a list of debts to pay and empty: `--strict` ignores it.

Usage: scripts/check-architecture.py [--strict] [--allow FILE]
"""

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
ALLOW = ROOT / "scripts" / "architecture-allow.txt"
SINCE = "121a55f"
SUBJECT_MAX = 72

DUCT = re.compile(r"\bduct::")
PRINT = re.compile(r"(?<![A-Za-z0-9_])(e?println|e?print)!")


def code_of(line: str) -> str:
    """The line without its `//` comment (a `//` inside a string is rare enough to ignore)."""
    return line.split("//", 1)[0]


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def source_violations():
    """(rule, path, line number, text) for each duct or print use outside its one home."""
    for f in sorted(SRC.rglob("*.rs")):
        path = rel(f)
        printer = path == "src/printer.rs" or path.startswith("src/printer/")
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            code = code_of(line)
            if DUCT.search(code) and path != "src/process.rs":
                yield ("duct", path, n, line.strip())
            if PRINT.search(code) and not printer:
                yield ("print", path, n, line.strip())


def import_cycle_violations():
    """Each import circle among src/'s files (scripts/import-cycles.py)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/import-cycles.py"), "--check"],
        capture_output=True, text=True, cwd=ROOT,
    )
    if out.returncode != 0:
        for line in out.stdout.splitlines():
            if line.startswith("circle"):
                yield ("import-cycle", "src", 0, line)


def subject_violations():
    """Commit subjects over the limit since SINCE; a note instead when git cannot tell."""
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", SINCE, "HEAD"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if ancestor.returncode != 0:
        print(f"note: commit {SINCE} is not in this checkout's history; subjects not checked",
              file=sys.stderr)
        return
    log = subprocess.run(
        ["git", "log", "--format=%H %s", f"{SINCE}..HEAD"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    for entry in log.stdout.splitlines():
        commit, _, subject = entry.partition(" ")
        if len(subject) > SUBJECT_MAX:
            yield ("subject", f"commit:{commit}", 0,
                   f"{len(subject)} characters (at most {SUBJECT_MAX}): {subject}")


def read_allow(path: Path):
    allowed = Counter()
    if not path.exists():
        return allowed
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[2].isdigit():
            sys.exit(f"{rel(path)}:{n}: expected `RULE PATH COUNT`, got {line!r}")
        allowed[(parts[0], parts[1])] += int(parts[2])
    return allowed


def main(argv):
    strict = "--strict" in argv
    allow_path = ALLOW
    if "--allow" in argv:
        allow_path = Path(argv[argv.index("--allow") + 1])
    allowed = Counter() if strict else read_allow(allow_path)
    used = Counter()
    failed = 0
    found = [*source_violations(), *import_cycle_violations(), *subject_violations()]
    for rule, path, n, text in found:
        where = f"{path}:{n}" if n else path
        key = (rule, path)
        if used[key] < allowed[key]:
            used[key] += 1
            print(f"{where}: {rule}: allowed for now: {text}")
        else:
            failed += 1
            print(f"{where}: {rule}: {text}")
    stale = [k for k in allowed if used[k] < allowed[k]]
    for rule, path in stale:
        print(f"note: {rel(allow_path)} allows {allowed[(rule, path)]} `{rule}` in {path}, "
              f"{used[(rule, path)]} found: lower it", file=sys.stderr)
    print(f"check-architecture: {failed} violation(s), {sum(used.values())} allowed for now"
          + (" (--strict)" if strict else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
