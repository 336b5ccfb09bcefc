#!/usr/bin/env python3
"""Which top-level module of kernel/src uses which, read from `crate::` paths.

    scripts/module_graph.py           print each module and the modules it uses
    scripts/module_graph.py --check   exit 1 naming every cycle (two or more modules that
                                      reach each other), so dependencies flow one way

A module is a file or folder directly under kernel/src; `lib.rs` and `main.rs` are the
crate roots and are left out. Comments are ignored, so a doc link does not count as a use.
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "kernel" / "src"
ROOTS = {"lib", "main"}


def modules():
    files = {p.stem for p in SRC.glob("*.rs")}
    folders = {p.parent.name for p in SRC.glob("*/mod.rs")}
    return (files | folders) - ROOTS


def strip_comments(source):
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def used_names(source):
    """Top-level names after `crate::`, including grouped `use crate::{a, b::c}`."""
    names = set(re.findall(r"\bcrate::(\w+)", source))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", source):
        names.update(re.findall(r"(?:^|,)\s*(\w+)", group))
    return names


def graph():
    mods = modules()
    uses = {m: {} for m in mods}
    for path in SRC.rglob("*.rs"):
        top = path.relative_to(SRC).parts[0].removesuffix(".rs")
        if top in ROOTS:
            continue
        for name in used_names(strip_comments(path.read_text())):
            if name in mods and name != top:
                uses[top].setdefault(name, set()).add(str(path.relative_to(SRC)))
    return uses


def cycles(uses):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in uses[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(uses):
        if v not in index:
            visit(v)
    return found


def main():
    uses = graph()
    if "--check" not in sys.argv[1:]:
        for module in sorted(uses):
            print(f"{module:14} -> {', '.join(sorted(uses[module])) or '(leaf)'}")
        return 0
    bad = cycles(uses)
    for component in bad:
        print(f"modules that use each other: {' , '.join(component)}", file=sys.stderr)
        for a in component:
            for b in component:
                if b in uses[a]:
                    print(f"  {a} -> {b} in {', '.join(sorted(uses[a][b]))}", file=sys.stderr)
    if bad:
        print("dependencies must flow one way (see kernel/src/lib.rs)", file=sys.stderr)
        return 1
    print(f"{len(uses)} modules, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
