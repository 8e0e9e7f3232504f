#!/usr/bin/env python3
"""Count the import circles among parbake's source files.

Each file under src/ is a module (src/a/b.rs and src/a/b/mod.rs are `a::b`). A file depends on
every module it names by a `crate::`, `super::` or `self::` path, in a `use` or inline, resolved
to the longest prefix that is a module. An import circle is a strongly connected component of
more than one file. A file's own child modules (`mod x;`) are not an edge: a parent declaring its
children is structure, not an import.

Usage: scripts/import-cycles.py [SRC]   prints each circle, then `circles: N`; exits 1 if N > 0
with --check.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{")


def module_of(src: Path, f: Path) -> tuple:
    parts = list(f.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


RAW_OPEN = re.compile(r"b?r(#*)\"")
CHAR = re.compile(r"'(?:\\(?:u\{[0-9A-Fa-f]*\}|x[0-9A-Fa-f]{2}|.)|[^\\'])'", re.S)


def strip_comments_and_strings(text: str) -> str:
    """Blank comments, string literals (plain, byte, raw) and char literals, in one left-to-right
    pass, so a `//` inside a string, a `"` inside a char literal or a backslash-newline inside a
    string cannot turn code into string or string into code."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif (m := RAW_OPEN.match(text, i)) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := CHAR.match(text, i)):
            i = m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_tests(text: str) -> str:
    """Drop `#[cfg(test)] mod ... { ... }` blocks: test code is not part of the layering."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def group_items(text: str, start: int) -> list:
    """The paths inside a `use x::{...}` group starting at `start` (just after the brace)."""
    depth, j, prefix, items, cur = 1, start, [], [], ""
    while j < len(text) and depth:
        c = text[j]
        if c == "{":
            prefix.append(cur.strip().rstrip(":"))
            cur = ""
            depth += 1
        elif c == "}":
            if cur.strip():
                items.append("::".join(p for p in prefix + [cur.strip()] if p))
            cur = ""
            depth -= 1
            if prefix:
                prefix.pop()
        elif c == ",":
            if cur.strip():
                items.append("::".join(p for p in prefix + [cur.strip()] if p))
            cur = ""
        else:
            cur += c
        j += 1
    return items


def resolve(base: tuple, rest: list, modules: set) -> tuple:
    best = None
    for n in range(len(rest) + 1):
        cand = base + tuple(rest[:n])
        if cand in modules:
            best = cand
    return best


def anchor(kind: str, me: tuple, is_mod_file: bool) -> tuple:
    if kind == "crate":
        return ()
    here = me if is_mod_file else me[:-1]
    if kind == "self":
        return me
    return here[:-1] if is_mod_file else here  # super


def edges_of(src: Path, f: Path, modules: set) -> set:
    me = module_of(src, f)
    is_mod_file = f.stem in ("mod", "lib", "main")
    text = strip_tests(strip_comments_and_strings(f.read_text()))
    deps = set()
    paths = [(m.group(1), m.group(2)) for m in PATH.finditer(text)]
    for m in GROUP.finditer(text):
        for item in group_items(text, m.end()):
            paths.append((m.group(1), m.group(2) + "::" + item.split(" as ")[0]))
    for kind, rest in paths:
        segs = [s for s in rest.split("::") if s and s != "self"]
        base = anchor(kind, me, is_mod_file)
        target = resolve(base, segs, modules)
        if target is not None and target != me and target[: len(me)] != me:
            deps.add(target)
    return deps


def sccs(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = Path(args[0] if args else "src")
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f) for f in files}
    # A parent module re-exporting or using its children is not a cycle through them; only
    # edges that leave a file's own subtree count (see edges_of).
    graph = {module_of(src, f): edges_of(src, f, modules) for f in files}
    circles = [sorted(c) for c in sccs(graph) if len(c) > 1]
    for c in sorted(circles, key=len, reverse=True):
        names = ["::".join(m) or "crate" for m in c]
        print(f"circle of {len(c)}: {' '.join(names)}")
    print(f"circles: {len(circles)}, files in them: {sum(len(c) for c in circles)}")
    return 1 if "--check" in sys.argv and circles else 0


if __name__ == "__main__":
    sys.exit(main())
