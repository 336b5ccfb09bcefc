#!/usr/bin/env python3
"""Builds the tutorial notebooks from their one source each (`notebooks/source/*.nbsrc`).

    python3 notebooks/build.py          # write every notebook
    python3 notebooks/build.py --check  # exit 1 if a committed notebook is out of date

From each source it writes
  notebooks/NN-name.ipynb                    the learner copy (stubs, no solution code)
  notebooks/instructor/solutions/NN-name.ipynb  the solution copy
  notebooks/instructor/solutions/rs/NAME.rs  each exercise's solution, for `:solution NAME`
and from all sources together
  notebooks/instructor/presenter.ipynb       the cells tagged `demo`, solved, for the projector

Source format (plain text, stdlib only, no outputs ever):

    %% md
    Markdown text.
    %% code tags=setup,measure:sequential name=fetch-all
    let x = 1;
    // >>> stub
    naive_version();          <- learner copy only
    // >>> solution
    better_version();         <- solution and presenter copies only
    // >>> wrong-result: hint words the self-check must print
    a_wrong_answer();         <- in no notebook: the tests run it before the self-check
    // >>> wrong-way: hint words the self-check must print
    right_answer_wrong_way();
    // <<<

A `%%` header starts a cell: `md` or `code`, then optional `tags=a,b` and `name=NAME`
(an exercise's solution name). Tags `learner-only` / `solution-only` keep a cell out
of the other copy; `demo` also puts it in the presenter notebook.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"
INSTRUCTOR = HERE / "instructor"
SOLUTIONS = INSTRUCTOR / "solutions"
SOLUTION_FILES = SOLUTIONS / "rs"

STUB, SOLUTION, END = "// >>> stub", "// >>> solution", "// <<<"
WRONG_RESULT, WRONG_WAY = "// >>> wrong-result", "// >>> wrong-way"
BLOCKS = {STUB: "stub", SOLUTION: "solution", WRONG_RESULT: "wrong-result", WRONG_WAY: "wrong-way"}
KERNELSPEC = {"display_name": "Rust (rustmeter)", "language": "rust", "name": "rustmeter"}
LANGUAGE_INFO = {
    "codemirror_mode": "rust",
    "file_extension": ".rs",
    "mimetype": "text/rust",
    "name": "rust",
    "pygment_lexer": "rust",
}


class SourceError(Exception):
    pass


def parse(path: Path) -> list[dict]:
    """Cells of one source: {kind, tags, name, lines}."""
    cells: list[dict] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("%% "):
            words = line[3:].split()
            if not words or words[0] not in ("md", "code"):
                raise SourceError(f"{path.name}:{number}: expected '%% md' or '%% code', got {line!r}")
            cell = {"kind": words[0], "tags": [], "name": None, "lines": [], "at": number,
                    "from": path.stem}
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "tags" and value:
                    cell["tags"] = value.split(",")
                elif key == "name" and value:
                    cell["name"] = value
                else:
                    raise SourceError(f"{path.name}:{number}: unknown header part {word!r}")
            cells.append(cell)
        elif not cells:
            if line.strip():
                raise SourceError(f"{path.name}:{number}: text before the first '%%' header")
        else:
            cells[-1]["lines"].append(line)
    for cell in cells:
        while cell["lines"] and not cell["lines"][-1].strip():
            cell["lines"].pop()
        check_markers(path, cell)
    return cells


def block_of(line: str) -> tuple[str | None, str]:
    """The block a marker line opens (`solution`, …) and its text after `:`."""
    marker = line.strip()
    for opener, kind in BLOCKS.items():
        if marker == opener or marker.startswith(opener + ":"):
            return kind, marker[len(opener) + 1:].strip()
    return None, ""


def check_markers(path: Path, cell: dict) -> None:
    state = None
    for line in cell["lines"]:
        marker = line.strip()
        if block_of(line)[0]:
            if cell["kind"] != "code":
                raise SourceError(f"{path.name}:{cell['at']}: markers only in code cells")
            state = marker
        elif marker == END:
            if state is None:
                raise SourceError(f"{path.name}:{cell['at']}: '{END}' without an opening marker")
            state = None
    if state is not None:
        raise SourceError(f"{path.name}:{cell['at']}: marker block not closed with '{END}'")
    if cell["name"] and not any(l.strip() == SOLUTION for l in cell["lines"]):
        raise SourceError(f"{path.name}:{cell['at']}: exercise {cell['name']} has no solution block")


def with_blocks(lines: list[str]) -> list[tuple[str | None, str]]:
    """Each line that is not a marker, with the block it sits in (None: outside blocks)."""
    block, out = None, []
    for line in lines:
        kind, _ = block_of(line)
        if kind:
            block = kind
        elif line.strip() == END:
            block = None
        else:
            out.append((block, line))
    return out


def render(lines: list[str], solved: bool | str) -> str:
    """The code a copy shows: stub blocks for learners, solution blocks when solved;
    `solved` may also name a block (`wrong-result`, `wrong-way`) to show instead."""
    wanted = solved if isinstance(solved, str) else ("solution" if solved else "stub")
    return "\n".join(line for block, line in with_blocks(lines) if block in (None, wanted))


def block_lines(lines: list[str], wanted: str) -> list[str]:
    """Every line inside blocks of one kind (`solution`: what learners must never see)."""
    return [line for block, line in with_blocks(lines) if block == wanted]


def exercise(cell: dict, stem: str) -> dict:
    """What the tests need to try an exercise's self-check with each kind of answer."""
    hints = {kind: text for kind, text in (block_of(l) for l in cell["lines"]) if kind}
    return {
        "notebook": stem,
        "cell_tag_check": f"check:{cell['name']}",
        "variants": {
            kind: {"code": render(cell["lines"], kind), "hint": hints.get(kind, "")}
            for kind in ("solution", "wrong-result", "wrong-way")
            if kind in hints
        },
    }


def notebook(cells: list[dict], stem: str, solved: bool, title_note: str = "") -> dict:
    out = []
    for index, cell in enumerate(cells):
        if "learner-only" in cell["tags"] and solved:
            continue
        if "solution-only" in cell["tags"] and not solved:
            continue
        text = render(cell["lines"], solved)
        if index == 0 and title_note and cell["kind"] == "md":
            text = text + "\n\n" + title_note
        origin = cell.get("from", stem)
        digest = hashlib.sha1(f"{stem}/{origin}/{cell['at']}/{cell['name']}".encode()).hexdigest()[:12]
        entry = {
            "cell_type": "markdown" if cell["kind"] == "md" else "code",
            "id": digest,
            "metadata": {"tags": cell["tags"]} if cell["tags"] else {},
            "source": source_lines(text),
        }
        if cell["kind"] == "code":
            entry["execution_count"] = None
            entry["outputs"] = []
        out.append(entry)
    return {
        "cells": out,
        "metadata": {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def source_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [l + "\n" for l in lines[:-1]] + [lines[-1]] if text else []


def presenter(all_cells: list[tuple[str, list[dict]]]) -> dict:
    cells: list[dict] = [
        {"kind": "md", "tags": [], "name": None, "at": 0, "lines": [
            "# Presenter notebook: every lesson's key cells, solved",
            "",
            "Generated by `notebooks/build.py` from the lessons' cells tagged `demo`. "
            "Run the first cell, then walk the room through each section; lesson 6 "
            "compares the labelled runs with `:compare`. `:telemetry big` makes the footer readable "
            "on a projector.",
        ]},
        {"kind": "code", "tags": [], "name": None, "at": 1, "lines": [":telemetry big"]},
    ]
    setup_done = False
    for stem, source in all_cells:
        demos = [c for c in source if "demo" in c["tags"]]
        if not demos:
            continue
        heading = next((c for c in source if c["kind"] == "md"), None)
        title = heading["lines"][0].lstrip("# ") if heading and heading["lines"] else stem
        cells.append({"kind": "md", "tags": [], "name": None, "at": len(cells),
                      "lines": [f"## {title}"]})
        for cell in source:
            if "setup" in cell["tags"] and not setup_done:
                cells.append(cell)
                setup_done = True
        cells.extend(demos)
    return notebook(cells, "presenter", solved=True)


def write(path: Path, data: dict, check: bool, stale: list[Path]) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build(check: bool = False) -> list[Path]:
    """Writes (or, with `check`, compares) every generated file; returns stale ones."""
    stale: list[Path] = []
    everything = []
    names: dict[str, str] = {}
    for source in sorted(SOURCES.glob("*.nbsrc")):
        cells = parse(source)
        stem = source.stem
        everything.append((stem, cells))
        write(HERE / f"{stem}.ipynb", notebook(cells, stem, solved=False), check, stale)
        write(SOLUTIONS / f"{stem}.ipynb",
              notebook(cells, stem, solved=True,
                       title_note="*Solution copy, generated by `notebooks/build.py`.*"),
              check, stale)
        for cell in cells:
            if cell["name"]:
                if cell["name"] in names:
                    raise SourceError(f"exercise name {cell['name']} used in {names[cell['name']]} and {stem}")
                names[cell["name"]] = stem
                path = SOLUTION_FILES / f"{cell['name']}.rs"
                text = render(cell["lines"], solved=True) + "\n"
                if check:
                    if not path.exists() or path.read_text(encoding="utf-8") != text:
                        stale.append(path)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
    write(INSTRUCTOR / "presenter.ipynb", presenter(everything), check, stale)
    exercises = {
        cell["name"]: exercise(cell, stem)
        for stem, cells in everything
        for cell in cells
        if cell["name"]
    }
    write(INSTRUCTOR / "exercises.json", exercises, check, stale)
    return stale


def main() -> int:
    check = "--check" in sys.argv[1:]
    try:
        stale = build(check)
    except SourceError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 2
    if check and stale:
        print("out of date (run python3 notebooks/build.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
