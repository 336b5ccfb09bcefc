"""The tutorials, run the way a learner runs them: every learner, solution and presenter
notebook top to bottom through the real kernel with nbclient.

- no errors except in cells tagged `raises-exception`, and every code cell has its footer;
- each lesson's claim holds on this machine, read from the footer JSON of the cells
  tagged `measure:NAME` (by tag, never position), using `run_ms` and thresholds relative to
  the delay, N and core count the cells noted;
- each self-check prints only ✓ after the solution and a ✗ with the specific hint after
  each wrong answer (the solution notebooks run with both wrong answers inserted after
  each exercise's own self-check, then the check again);
- a self-check reads its exercise cell's figures, never the cell before it: the untouched
  stub fails, the check run again fails again, and so does the check after another,
  quick cell (the learner notebooks run with both inserted); the solution still passes
  after another cell;
- learner copies hold no solution code, all notebooks are generated, clean nbformat 4;
- executed HTML (nbconvert) shows the footer under its cells.
"""
from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from kernel_helpers import NOTEBOOKS, STARTUP_TIMEOUT

sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402  (notebooks/build.py)
from execute import printed, telemetry  # noqa: E402  (notebooks/execute.py)

INSTRUCTOR = NOTEBOOKS / "instructor"
LEARNER = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb") if not p.name.startswith("00-"))
SOLUTION = [INSTRUCTOR / "solutions" / p.name for p in LEARNER]
PRESENTER = INSTRUCTOR / "presenter.ipynb"
EXERCISES = json.loads((INSTRUCTOR / "exercises.json").read_text())
CELL_TIMEOUT = 600
CORES = len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- executing, once each

_executed: dict[str, nbformat.NotebookNode] = {}


# A quick cell that succeeds without threads: a check reading the cell before it (instead
# of its exercise) would take this one's figures and pass every timing and thread limit.
OTHER_CELL = "let another_cell = 1 + 1;"


def tagged_cell(source: str, tag: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def with_checks_repeated(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A learner notebook with, after each exercise's self-check, the check again, then
    another cell and the check once more."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        cells.append(cell)
        for name, exercise in EXERCISES.items():
            if exercise["cell_tag_check"] in cell.metadata.get("tags", []):
                cells += [
                    tagged_cell(cell.source, f"check-again:{name}"),
                    tagged_cell(OTHER_CELL, f"other-cell:{name}"),
                    tagged_cell(cell.source, f"check-after-other:{name}"),
                ]
    out.cells = cells
    return out


def with_wrong_answers(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution notebook with, after each exercise's self-check, another cell and the
    check again, then each wrong answer followed by the self-check again."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        cells.append(cell)
        for name, exercise in EXERCISES.items():
            if exercise["cell_tag_check"] not in cell.metadata.get("tags", []):
                continue
            cells += [
                tagged_cell(OTHER_CELL, f"other-cell:{name}"),
                tagged_cell(cell.source, f"check-after-other:{name}"),
            ]
            for kind in ("wrong-result", "wrong-way"):
                variant = exercise["variants"].get(kind)
                if variant is None:
                    continue
                answer = nbformat.v4.new_code_cell(variant["code"])
                answer.metadata["tags"] = [f"variant:{kind}:{name}"]
                check = nbformat.v4.new_code_cell(cell.source)
                check.metadata["tags"] = [f"variant-check:{kind}:{name}"]
                cells += [answer, check]
    out.cells = cells
    return out


def code_of(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def executed(path: Path) -> nbformat.NotebookNode:
    key = str(path)
    learner = NOTEBOOKS / path.name
    if path.parent.name == "solutions" and code_of(path) == code_of(learner):
        # A notebook without exercises: its solution copy runs the very same code.
        return executed(learner)
    if key not in _executed:
        from nbclient import NotebookClient

        nb = nbformat.read(path, as_version=4)
        if path.parent.name == "solutions":
            nb = with_wrong_answers(nb)
        elif path.parent == NOTEBOOKS:
            nb = with_checks_repeated(nb)
        NotebookClient(
            nb,
            timeout=CELL_TIMEOUT,
            startup_timeout=STARTUP_TIMEOUT,
            kernel_name="rustmeter",
            allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        _executed[key] = nb
    return _executed[key]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def text(cell) -> str:
    return printed(cell)


def has_footer(cell) -> bool:
    """A cell's footer: the telemetry display, or — for a failed cell, whose one error
    message ends with it — the traceback's last line ("✗ compile error (1.20 s) │ …")."""
    if telemetry(cell) is not None:
        return True
    failed = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    return bool(failed) and bool(failed[-1].traceback) and failed[-1].traceback[-1].startswith(("✗", "■"))


def errors(cell) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]


def is_command_only(cell) -> bool:
    """Cells of rustmeter's own commands (`:compare`, `:telemetry big`) run no code."""
    lines = [l.strip() for l in cell.source.splitlines() if l.strip()]
    return bool(lines) and all(l.startswith((":compare", ":telemetry", ":label")) for l in lines)


def tagged(nb, tag: str):
    found = [c for c in nb.cells if tag in tags(c)]
    assert found, f"no cell tagged {tag!r}"
    return found[0]


def tasks_of(t: dict, key: str) -> float:
    """A figure of the footer's tokio runtime (-1 when the cell has no runtime object)."""
    return float((t.get("runtime") or {}).get(key, -1))


def figures(nb, name: str) -> tuple[dict, dict]:
    """Footer JSON and notes (as floats where numeric) of the cell tagged measure:NAME."""
    cell = tagged(nb, f"measure:{name}")
    assert not errors(cell), f"measure:{name} failed: {errors(cell)}\n{text(cell)}"
    t = telemetry(cell)
    assert t, f"measure:{name} has no telemetry"
    notes = {}
    for key, value in (t.get("notes") or {}).items():
        try:
            notes[key] = float(value)
        except (TypeError, ValueError):
            notes[key] = value
    return t, notes


# ---------------------------------------------------------------- the notebooks as files


def test_notebooks_are_generated_from_their_sources() -> None:
    stale = build.build(check=True)
    assert not stale, f"run python3 notebooks/build.py; out of date: {stale}"
    assert len(LEARNER) >= 6, [p.name for p in LEARNER]


# The pace notebooks/INSTRUCTOR.md's core path states: words read a minute, minutes per
# code cell, per ▶ Run me first cell, and of work per exercise.
PACE_WORDS_PER_MINUTE = 180
PACE_CELL_MINUTES = 0.5
PACE_SETUP_MINUTES = 1.0
PACE_EXERCISE_MINUTES = 5.0
INTRO = "(intro)"


def section_minutes(source: Path) -> dict[str, float]:
    """Minutes each `## ` section of a notebook source takes at the guide's pace (hints in
    `<details>` are not counted as reading); the title and intro are `INTRO`."""
    import re

    minutes: dict[str, float] = {INTRO: 0.0}
    section = INTRO
    for cell in build.parse(source):
        if cell["kind"] == "md":
            text = re.sub(r"<details>.*?</details>", "", "\n".join(cell["lines"]), flags=re.S)
            for part in re.split(r"^(## .+)$", text, flags=re.M):
                if part.startswith("## "):
                    section = part[3:].strip()
                    minutes[section] = PACE_EXERCISE_MINUTES if section.startswith("✏️") else 0.0
                else:
                    minutes[section] += len(re.findall(r"\w+", part)) / PACE_WORDS_PER_MINUTE
        else:
            setup = "setup" in cell.get("tags", [])
            minutes[section] += PACE_SETUP_MINUTES if setup else PACE_CELL_MINUTES
    return minutes


def plan_rows(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` in INSTRUCTOR.md: min, notebook, core
    sections, checkpoint, cut sections."""
    text = (NOTEBOOKS / "INSTRUCTOR.md").read_text()
    table = text.split(heading, 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in ("|" + table).splitlines()]
    return [r for r in rows[2:] if r and r[0]]


def sections_of(cell: str) -> list[str]:
    """Section names in a table cell: `;`-separated, with any "(…)" remark dropped."""
    return [x.split(" (")[0].strip() for x in cell.split(";") if x.strip()]


@pytest.mark.parametrize("heading", ["## A 90-minute core path", "### Two sessions", "### A third session, or homework"])
def test_instructor_session_fits_90_minutes_at_its_pace(heading: str) -> None:
    """Each plan's rows follow each other from minute 0 to at most 90, and every notebook
    row has at least the minutes its sections need at the guide's stated pace."""
    rows = plan_rows(heading)
    assert len(rows) >= (1 if heading.startswith("### A third") else 6), rows
    sources = {p.stem[:2]: p for p in (NOTEBOOKS / "source").glob("*.nbsrc")}
    clock = 0
    for when, notebook, core, _checkpoint, cut in rows:
        start, end = (int(m) for m in when.split("–"))
        assert start == clock and end > start, f"row {when} does not follow minute {clock}"
        clock = end
        if notebook == "—":
            continue
        assert notebook in sources, f"row {when}: no notebook source {notebook!r}"
        minutes = section_minutes(sources[notebook])
        unknown = [x for x in sections_of(core) + sections_of(cut) if x not in minutes]
        assert not unknown, f"notebook {notebook}: no section {unknown} (it has {list(minutes)})"
        needed = minutes[INTRO] + sum(minutes[x] for x in sections_of(core))
        print(f"{notebook}: {end - start} min planned, {needed:.1f} min at the stated pace")
        assert end - start >= needed, f"notebook {notebook}: {end - start} min for {needed:.1f} min of sections"
    assert clock <= 90, f"the plan ends at minute {clock}"


def test_instructor_plans_place_every_section_of_every_notebook() -> None:
    """The core path names each of its notebooks' sections as core or cut; the sessions
    together cover every section of every notebook."""
    sources = {p.stem[:2]: p for p in (NOTEBOOKS / "source").glob("*.nbsrc")}
    covered: dict[str, set[str]] = {n: set() for n in sources}
    for heading in ("## A 90-minute core path", "### Two sessions", "### A third session, or homework"):
        for when, notebook, core, _checkpoint, cut in plan_rows(heading):
            if notebook == "—":
                continue
            sections = set(section_minutes(sources[notebook])) - {INTRO}
            if heading.startswith("## A 90"):
                forgotten = sections - set(sections_of(core)) - set(sections_of(cut))
                assert not forgotten, f"core path, notebook {notebook}: in neither column: {sorted(forgotten)}"
            covered[notebook] |= set(sections_of(core))
    for notebook, source in sources.items():
        left = set(section_minutes(source)) - {INTRO} - covered[notebook]
        assert not left, f"notebook {notebook}: sections in no session: {sorted(left)}"


@pytest.mark.parametrize("path", LEARNER + SOLUTION + [PRESENTER], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_is_clean_nbformat(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "rustmeter"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{cell.id} has outputs"
    setup = [c for c in nb.cells if "setup" in tags(c)]
    assert setup and ":dep tokio" in setup[0].source, "no setup cell with the canonical :dep line"


def test_every_setup_cell_is_the_canonical_one() -> None:
    """The same pinned dependency line everywhere, so the prebuilt cache hits."""
    sources = {p.name: tagged(nbformat.read(p, as_version=4), "setup").source for p in LEARNER}
    assert len(set(sources.values())) == 1, sources


def test_learner_copies_hold_no_solution_code() -> None:
    """Lines that exist in a source only inside solution (or wrong-answer) blocks never
    reach its learner copy, and no block appears there whole."""
    checked = 0
    for source in sorted((NOTEBOOKS / "source").glob("*.nbsrc")):
        learner_path = NOTEBOOKS / f"{source.stem}.ipynb"
        learner_text = learner_path.read_text()
        learner_sources = "\n".join(c.source for c in nbformat.read(learner_path, as_version=4).cells)
        cells = build.parse(source)
        public = {
            line.strip() for cell in cells for line in build.render(cell["lines"], False).splitlines()
        }
        learner_lines = {line.strip() for line in learner_sources.splitlines()}
        for cell in cells:
            for kind in ("solution", "wrong-result", "wrong-way"):
                block = build.block_lines(cell["lines"], kind)
                if block:
                    assert "\n".join(block) not in learner_sources, f"{source.name}: a {kind} block"
                for line in block:
                    if len(line.strip()) > 3 and line.strip() not in public:
                        checked += 1
                        assert line.strip() not in learner_lines, (
                            f"{source.name}: {kind} line in the learner copy: {line!r}"
                        )
        assert "// >>>" not in learner_text and "// <<<" not in learner_text
    assert checked > 0, "no solution lines found to check"
    for name, exercise in EXERCISES.items():
        assert {"solution", "wrong-result", "wrong-way"} <= set(exercise["variants"]), name
        assert (INSTRUCTOR / "solutions" / "rs" / f"{name}.rs").exists()


# ---------------------------------------------------------------- running them


@pytest.mark.parametrize("path", LEARNER + SOLUTION + [PRESENTER], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_runs_top_to_bottom_with_a_footer_under_every_cell(rustmeter_installed, path: Path) -> None:
    nb = executed(path)
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if errors(cell) and "raises-exception" not in tags(cell):
            problems.append(f"cell {index} {tags(cell)}: {errors(cell)}\n{cell.source[:200]}")
        if not is_command_only(cell) and not has_footer(cell):
            problems.append(f"cell {index} {tags(cell)} has no telemetry footer")
    assert not problems, "\n".join(problems)


def latencies(cell) -> dict:
    """The latencies a server cell of notebook 11 printed, in ms, and its turned-away count."""
    said = text(cell)
    found = re.search(r"latency p50 (\d+) ms, p90 (\d+) ms, p99 (\d+) ms, slowest (\d+) ms", said)
    away = re.search(r"turned away by a full queue[^:]*: (\d+)", said)
    assert found and away, f"no latency line in {said!r}"
    p50, p90, p99, slowest = (float(v) for v in found.groups())
    return {"p50": p50, "p90": p90, "p99": p99, "slowest": slowest, "turned_away": int(away.group(1))}


def check_server_lessons(nb, expect, run, cores) -> None:
    """Notebook 11: a thread per connection vs a task per connection, 1,000 and ~10,000 clients."""
    rows = {}
    for name in ("threads-1000", "tasks-1000", "threads-10000", "tasks-10000"):
        t, n = figures(nb, name)
        rows[name] = (t, n, latencies(tagged(nb, f"measure:{name}")))

    def added(t: dict) -> int:
        return t["threads_peak"] - t["threads_start"]

    def grew(t: dict) -> float:
        return t["rss_peak_bytes"] - t["rss_start_bytes"]

    def cpu_seconds(t: dict) -> float:
        return cores(t) * run(t) / 1e3

    for size in ("1000", "10000"):
        (th, n, lt), (tk, _, lk) = rows[f"threads-{size}"], rows[f"tasks-{size}"]
        clients, delay = n["clients"], n["delay_ms"]
        expect(lt["p50"] >= delay and lk["p50"] >= delay and lt["p50"] > lk["p50"],
               f"{clients:.0f} clients: median latency threads {lt['p50']:.0f} ms, tasks {lk['p50']:.0f} ms, "
               f"DELAY {delay:.0f} (the prose: both at least DELAY, the thread server's later)")
        # At 1,000 every handler starts before the first answers leave: clients and handlers.
        least_tasks = 1.5 * clients if size == "1000" else clients
        expect(added(tk) == 0 and tasks_of(tk, "tasks_peak") >= least_tasks,
               f"{clients:.0f} clients, task server: threads added {added(tk)}, footer's tasks peak "
               f"{tasks_of(tk, 'tasks_peak'):.0f} (the prose: no thread added; the clients and the handlers, "
               f"at 1,000 close to 2 × clients)")
        expect(th["threads_end"] == th["threads_start"] and grew(th) >= 3 * max(grew(tk), 0),
               f"{clients:.0f} clients: threads end {th['threads_end']} (start {th['threads_start']}); memory peak "
               f"+{grew(th) / 1e6:.1f} MB for threads, +{grew(tk) / 1e6:.1f} MB for tasks "
               f"(the prose: the threads joined; several times the tasks' memory)")
        expect(cpu_seconds(th) > cpu_seconds(tk),
               f"{clients:.0f} clients: CPU {cpu_seconds(th):.2f} s for threads, {cpu_seconds(tk):.2f} s for tasks "
               f"(the prose: thread starts and ends cost CPU)")
        # A connection the full queue turned away is retried after one second.
        for who, got in (("threads", lt), ("tasks", lk)):
            expect(got["turned_away"] == 0 or got["slowest"] >= 1000,
                   f"{clients:.0f} clients, {who}: {got['turned_away']} turned away, slowest {got['slowest']:.0f} ms "
                   f"(the prose: a connection turned away waits a second more)")
    (t1, n1, l1), (t10, n10, l10) = rows["threads-1000"], rows["threads-10000"]
    (_, _, k1), (_, _, k10) = rows["tasks-1000"], rows["tasks-10000"]
    expect(added(t1) >= 0.5 * n1["clients"] and added(t1) <= n1["clients"] + 2,
           f"1,000 clients, thread server: threads {t1['threads_start']}▸{t1['threads_peak']} "
           f"(the prose: close to one per connection)")
    expect(grew(t10) >= 3 * grew(t1) and l10["p50"] - l1["p50"] > k10["p50"] - k1["p50"]
           and l10["slowest"] >= 3 * n10["delay_ms"],
           f"ten times the crowd: thread memory +{grew(t1) / 1e6:.1f} → +{grew(t10) / 1e6:.1f} MB; median "
           f"threads {l1['p50']:.0f} → {l10['p50']:.0f} ms, tasks {k1['p50']:.0f} → {k10['p50']:.0f} ms; thread "
           f"server's slowest {l10['slowest']:.0f} ms (the prose: memory grew with the crowd, the thread server's "
           f"median grew more, its slowest waited several DELAYs)")


def check_lessons(nb, stem: str) -> list[str]:
    """Each lesson's claim, from the tagged cells of notebook `stem`. Returns what failed."""
    failed: list[str] = []

    def expect(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failed.append(what)

    def run(t: dict) -> float:
        return float(t["run_ms"])

    def cores(t: dict) -> float:
        return float(t.get("cpu_cores") or 0.0)

    def busy(t: dict) -> str:
        """What else ran meanwhile: CPU lessons need the machine to themselves."""
        other = t.get("other_cores")
        return f" (other programs used {other:.2f} cores meanwhile)" if other else ""

    def busy_floor(t: dict) -> float:
        """Most of the cores (up to 2) other programs left free during the run."""
        free = max(CORES - float(t.get("other_cores") or 0.0), 1.0)
        return round(0.75 * min(free, 2), 2)
    if stem.startswith("01"):
        t, _ = figures(nb, "sleep")
        expect(run(t) >= 900 and cores(t) < 0.1, f"sleep: run {run(t):.0f} ms ≈ 1 s at {cores(t):.2f} cores")
        t, _ = figures(nb, "busy2")
        expect(cores(t) >= busy_floor(t), f"two spinning threads: {cores(t):.2f} cores ≥ {busy_floor(t)}{busy(t)}")
        grown, _ = figures(nb, "memory")
        dropped, _ = figures(nb, "drop")
        expect(grown["rss_end_bytes"] - grown["rss_start_bytes"] >= 90e6
               and dropped["rss_start_bytes"] - dropped["rss_end_bytes"] >= 90e6,
               f"100 MB vector: +{(grown['rss_end_bytes'] - grown['rss_start_bytes']) / 1e6:.0f} MB, "
               f"back down {(dropped['rss_start_bytes'] - dropped['rss_end_bytes']) / 1e6:.0f} MB after drop")
    elif stem.startswith("02"):
        t, n = figures(nb, "blocking-read")
        expect(run(t) >= 0.9 * n["delay_ms"] and cores(t) < 0.1 and n["heartbeats"] >= 3,
               f"blocking read: run {run(t):.0f} ms for a {n['delay_ms']:.0f} ms wait at {cores(t):.2f} cores, {n['heartbeats']:.0f} heartbeats")
        t, n = figures(nb, "busy-poll")
        expect(cores(t) >= 0.7 and run(t) >= 0.9 * n["delay_ms"],
               f"busy poll: {cores(t):.2f} cores for a {n['delay_ms']:.0f} ms wait")
        t, n = figures(nb, "sequential")
        expect(run(t) >= 0.9 * n["n"] * n["delay_ms"] and cores(t) < 0.1,
               f"sequential: run {run(t):.0f} ms ≥ 0.9 × {n['n']:.0f} × {n['delay_ms']:.0f} ms at {cores(t):.2f} cores")
        t, n = figures(nb, "chain-blocking")
        expect(run(t) >= 0.9 * n["n"] * n["delay_ms"], f"blocking chain: run {run(t):.0f} ms ≥ 0.9 × n × delay")
    elif stem.startswith("03"):
        t, n = figures(nb, "threads-10")
        expect(run(t) < 3 * n["delay_ms"] and t["threads_peak"] >= t["threads_start"] + n["n"],
               f"thread per request: run {run(t):.0f} ms < 3 × {n['delay_ms']:.0f}, threads {t['threads_start']}→{t['threads_peak']} (+{n['n']:.0f})")
        for name in ("threads-many", "threads-10000"):
            t, n = figures(nb, name)
            expect(t["threads_peak"] >= t["threads_start"] + 0.9 * n["n"],
                   f"{name}: threads {t['threads_start']}→{t['threads_peak']} for n = {n['n']:.0f}")
    elif stem.startswith("04"):
        seq, n = figures(nb, "async-sequential")
        join, _ = figures(nb, "async-join")
        expect(run(seq) >= 1.7 * run(join),
               f"lazy vs join!: {run(seq):.0f} ms / {run(join):.0f} ms = {run(seq) / max(run(join), 1):.2f} ≥ 1.7")
        _, n = figures(nb, "lazy")
        expect(n["sent"] == 0, f"a future never awaited sent {n['sent']:.0f} requests")
        t, n = figures(nb, "tasks-10")
        expect(run(t) < 3 * n["delay_ms"] and t["threads_peak"] == t["threads_start"],
               f"10 tasks: run {run(t):.0f} ms, threads {t['threads_start']}→{t['threads_peak']} (the prose: no thread added)")
        expect(tasks_of(t, "tasks_peak") >= 10 and tasks_of(t, "tasks_end") == tasks_of(t, "tasks_start"),
               f"10 tasks: the footer's tasks {t.get('runtime')} (the prose: tasks 0 ▸ 10 max ▸ 0)")
        t, n = figures(nb, "tasks-many")
        expect(n["n"] >= 100, f"tasks-many ran n = {n['n']:.0f} (1,000 unless the fd limit is lower)")
        expect(run(t) < 3 * n["delay_ms"] and t["threads_peak"] == t["threads_start"],
               f"{n['n']:.0f} tasks: run {run(t):.0f} ms < 3 × {n['delay_ms']:.0f}, threads {t['threads_start']}→{t['threads_peak']}")
        expect(tasks_of(t, "tasks_peak") >= 0.9 * n["n"], f"{n['n']:.0f} tasks: footer's tasks {t.get('runtime')}")
        per_task = (t["rss_peak_bytes"] - t["rss_start_bytes"]) / n["n"]
        expect(4_000 <= per_task <= 20_000,
               f"{n['n']:.0f} tasks holding a connection: {per_task / 1000:.1f} kB each (the prose: about 9 KB, an 8 KiB buffer each)")
        tasks, n = figures(nb, "tasks-10000")
        expect(tasks["threads_peak"] == tasks["threads_start"],
               f"{n['n']:.0f} sleeping tasks: threads {tasks['threads_start']}→{tasks['threads_peak']}")
        expect(tasks_of(tasks, "tasks_spawned") >= n["n"], f"{n['n']:.0f} sleeping tasks: footer's tasks {tasks.get('runtime')}")
        expect(n.get("bytes_per_task", 0) < 4096, f"bytes per task {n.get('bytes_per_task')}")
        t, n = figures(nb, "chain-async")
        expect(run(t) >= 0.9 * n["n"] * n["delay_ms"], f"async chain: run {run(t):.0f} ms ≥ 0.9 × n × delay")
    elif stem.startswith("05"):
        t, _ = figures(nb, "cpu-join")
        expect(cores(t) < 1.3, f"join! of CPU work: {cores(t):.2f} cores < 1.3")
        spawn, ns = figures(nb, "cpu-spawn")
        expect(cores(spawn) >= busy_floor(spawn), f"spawned CPU work: {cores(spawn):.2f} cores ≥ {busy_floor(spawn)}{busy(spawn)}")
        _, nb_ = figures(nb, "cpu-spawn-blocking")
        expect(ns["gap_ms"] >= 5 * nb_["gap_ms"],
               f"heartbeat gap: spawn {ns['gap_ms']:.0f} ms ≥ 5 × spawn_blocking {nb_['gap_ms']:.0f} ms")
        _, n = figures(nb, "block-current-thread")
        expect(n["gap_ms"] >= 0.8 * n["blocked_ms"],
               f"current_thread runtime: heartbeat gap {n['gap_ms']:.0f} ms ≥ 0.8 × blocked {n['blocked_ms']:.0f} ms")
        for name, stalled in (("block-one", 1), ("block-all", 2)):
            t, _ = figures(nb, name)
            stalls = (t.get("runtime") or {}).get("stalls") or []
            longest = max((float(x.get("duration_ms", 0)) for x in stalls), default=0.0)
            expect(len(stalls) >= min(stalled, CORES) and longest >= 800,
                   f"{name}: the footer's stall warning lists {len(stalls)} stalls, the longest {longest:.0f} ms "
                   f"(the prose: ⚠ a task held a worker for 1.00 s)")
        t, n = figures(nb, "blocking-cap")
        added = t["threads_peak"] - t["threads_start"]
        expect(400 <= added <= 512 and run(t) >= 1.8 * n["delay_ms"],
               f"{n['calls']:.0f} spawn_blocking calls: +{added} threads (the prose: up to 512), run {run(t):.0f} ms ≈ 2 × delay")
        # The pool may still hold the 600-call cell's idle threads (they last ~10 s), so
        # the lesson reads the reads off the pool's task count, not off new threads.
        t, n = figures(nb, "tokio-fs")
        pool = t.get("runtime") or {}
        expect(pool.get("blocking_tasks", 0) >= n["files"] and pool.get("blocking_threads_peak", 0) >= 4,
               f"tokio::fs: {pool.get('blocking_tasks')} blocking tasks for {n['files']:.0f} files "
               f"on {pool.get('blocking_threads_peak')} pool threads (the prose: 100 blocking tasks)")
    elif stem.startswith("06"):
        seq, n = figures(nb, "cmp-sequential")
        threads, _ = figures(nb, "cmp-threads")
        tasks, _ = figures(nb, "cmp-tasks")
        expect(run(seq) >= 0.9 * n["n"] * n["delay_ms"], f"sequential {run(seq):.0f} ms ≥ 0.9 × n × delay")
        expect(run(threads) < 3 * n["delay_ms"] and run(tasks) < 3 * n["delay_ms"],
               f"threads {run(threads):.0f} ms and tasks {run(tasks):.0f} ms < 3 × delay")
        expect(threads["threads_peak"] >= threads["threads_start"] + n["n"]
               and tasks["threads_peak"] == tasks["threads_start"]
               and tasks_of(tasks, "tasks_spawned") >= n["n"],
               f"threads +{threads['threads_peak'] - threads['threads_start']}, tasks +{tasks['threads_peak'] - tasks['threads_start']}")
    elif stem.startswith("07"):
        t, n = figures(nb, "count-polls")
        expect(n["polls"] <= 10 and run(t) >= 0.9 * n["delay_ms"] and cores(t) < 0.1,
               f"one request: {n['polls']:.0f} polls in {run(t):.0f} ms at {cores(t):.2f} cores (the prose: a handful, no CPU)")
        t, n = figures(nb, "self-wake")
        expect(n["polls"] >= 1000 and cores(t) >= 0.4,
               f"self-waking future: {n['polls']:.0f} polls, {cores(t):.2f} cores{busy(t)} (the prose: most of a core)")
        t, n = figures(nb, "thread-timer")
        expect(n["polls"] == 2 and t["threads_peak"] >= t["threads_start"] + 1,
               f"thread timer: {n['polls']:.0f} polls, threads {t['threads_start']}→{t['threads_peak']} (the prose: two polls, one more thread)")
        t, n = figures(nb, "many-sleeps")
        expect(n["polls"] <= 3 * n["n"] and t["threads_peak"] == t["threads_start"]
               and tasks_of(t, "tasks_peak") >= 0.9 * n["n"],
               f"{n['n']:.0f} sleeps: {n['polls']:.0f} polls, threads {t['threads_start']}→{t['threads_peak']}, "
               f"footer's tasks {t.get('runtime')} (the prose: ~2 polls each, no thread added)")
        _, n = figures(nb, "idle-workers")
        expect(n["workers"] >= 1 and (n["in_epoll"] >= 1 or not n["wchan_shown"]),
               f"{n['workers']:.0f} idle workers, {n['in_epoll']:.0f} waiting in epoll (wchan shown: {n['wchan_shown']})")
    elif stem.startswith("08"):
        unbounded, n = figures(nb, "unbounded")
        made = n["messages"] * n["message_bytes"]
        grew = unbounded["rss_peak_bytes"] - unbounded["rss_start_bytes"]
        expect(grew >= 0.5 * made and n["producer_ms"] < 0.5 * n["consumer_ms"],
               f"unbounded: memory peak +{grew / 1e6:.1f} MB of {made / 1e6:.0f} MB made, producer done "
               f"{n['producer_ms']:.0f} ms, consumer {n['consumer_ms']:.0f} ms (the prose: over half, the producer far ahead)")
        bounded, b = figures(nb, "bounded")
        grew_bounded = bounded["rss_peak_bytes"] - bounded["rss_start_bytes"]
        # A few hundred kB here; each worker's malloc arena may keep a little (8 workers).
        expect(grew_bounded < 4e6 and grew_bounded < 0.1 * grew and b["producer_ms"] >= 0.8 * b["consumer_ms"]
               and run(bounded) <= 1.5 * run(unbounded) + 100,
               f"bounded: memory peak +{grew_bounded / 1e6:.2f} MB, producer done {b['producer_ms']:.0f} ms, consumer "
               f"{b['consumer_ms']:.0f} ms, run {run(bounded):.0f} vs {run(unbounded):.0f} ms "
               f"(the prose: a few hundred kB, at most a few MB; the producer waits; the same run time)")
        held, n = figures(nb, "lock-held")
        scoped, _ = figures(nb, "lock-scoped")
        expect(run(held) >= 0.9 * n["tasks"] * n["hold_ms"] and cores(held) < 0.2
               and run(scoped) < 3 * n["hold_ms"],
               f"lock across .await {run(held):.0f} ms at {cores(held):.2f} cores, released first {run(scoped):.0f} ms "
               f"(the prose: ~{n['tasks'] * n['hold_ms']:.0f} ms at no CPU, then ~{n['hold_ms']:.0f} ms)")
        said = " ".join(errors(tagged(nb, "measure:guard-not-send")))
        expect("cannot be sent between threads safely" in said,
               f"a std guard across .await in tokio::spawn: {said[:200]!r} (the prose: the compiler refuses)")
    elif stem.startswith("09"):
        t, n = figures(nb, "timeout")
        expect(n["gave_up_ms"] < 0.8 * n["delay_ms"] and n["in_flight_after"] >= 1 and n["served_later"] >= 1
               and cores(t) < 0.2,
               f"timeout: gave up after {n['gave_up_ms']:.0f} ms of {n['delay_ms']:.0f}, server in flight "
               f"{n['in_flight_after']:.0f} then served {n['served_later']:.0f}, {cores(t):.2f} cores "
               f"(the prose: ~100 ms, the server still served it, no CPU)")
        t, n = figures(nb, "detached")
        expect(n["ticks_later"] >= n["ticks_at_drop"] + 10
               and tasks_of(t, "tasks_end") >= tasks_of(t, "tasks_start") + 1 >= 1,
               f"detached: ticks {n['ticks_at_drop']:.0f}→{n['ticks_later']:.0f}, footer's tasks "
               f"{tasks_of(t, 'tasks_start'):.0f}→{tasks_of(t, 'tasks_end'):.0f} (the prose: still ticking, one more task)")
        t, n = figures(nb, "abort")
        said = text(tagged(nb, "measure:abort"))
        expect(n["ticks_later"] == n["ticks_stopped"] and 0 <= tasks_of(t, "tasks_end") <= tasks_of(t, "tasks_start") - 1
               and "JoinError, cancelled" in said,
               f"abort: ticks {n['ticks_stopped']:.0f}→{n['ticks_later']:.0f}, footer's tasks "
               f"{tasks_of(t, 'tasks_start'):.0f}→{tasks_of(t, 'tasks_end'):.0f}, printed {said!r} "
               f"(the prose: stopped, one task fewer, a cancelled JoinError)")
        t, n = figures(nb, "joinset-drop")
        expect(n["finished"] == 0 and tasks_of(t, "tasks_peak") >= tasks_of(t, "tasks_start") + n["tasks"] >= n["tasks"]
               and tasks_of(t, "tasks_end") == tasks_of(t, "tasks_start"),
               f"dropped JoinSet: {n['finished']:.0f} of {n['tasks']:.0f} finished, footer's tasks "
               f"{tasks_of(t, 'tasks_start'):.0f}▸{tasks_of(t, 'tasks_peak'):.0f}▸{tasks_of(t, 'tasks_end'):.0f} "
               f"(the prose: 0 finished, 100 tasks then back)")
        _, lossy = figures(nb, "select-loses")
        _, safe = figures(nb, "select-safe")
        expect(lossy["received"] < lossy["sent"] and lossy["reports"] >= 1 and safe["received"] == safe["sent"]
               and safe["reports"] >= 0.5 * lossy["reports"],
               f"select!: the pair future received {lossy['received']:.0f} of {lossy['sent']:.0f} with "
               f"{lossy['reports']:.0f} reports; recv() {safe['received']:.0f} with {safe['reports']:.0f} "
               f"(the prose: messages lost; then all, with as many reports)")
        t, n = figures(nb, "select-restarts")
        expect(n["requests"] >= 10 and n["answered"] == 0,
               f"select! in a loop: {n['requests']:.0f} requests, {n['answered']:.0f} answered (the prose: ten, none)")
        t, n = figures(nb, "select-pinned")
        said = text(tagged(nb, "measure:select-pinned"))
        expect(run(t) >= 9 * n["delay_ms"] and n["reports"] >= 5 and cores(t) < 0.2 and "one request, answer: item 7" in said,
               f"pinned: run {run(t):.0f} ms, {n['reports']:.0f} reports, {cores(t):.2f} cores "
               f"(the prose: one request answered after 10 × delay, a report each delay, no CPU)")
    elif stem.startswith("10"):
        t, n = figures(nb, "tokio-main")
        added = t["threads_peak"] - t["threads_start"]
        expect(run(t) < 1.8 * n["delay_ms"] and added >= min(n["cores"], 2) and t["threads_end"] == t["threads_start"],
               f"#[tokio::main]: run {run(t):.0f} ms, threads {t['threads_start']}▸{t['threads_peak']}▸{t['threads_end']} "
               f"on {n['cores']:.0f} cores (the prose: one delay; workers started, then gone)")
        t, n = figures(nb, "current-thread")
        expect(run(t) < 1.8 * n["delay_ms"] and t["threads_peak"] == t["threads_start"],
               f"current_thread: run {run(t):.0f} ms, threads {t['threads_start']}▸{t['threads_peak']} "
               f"(the prose: the same delay, no thread added)")
        _, program = figures(nb, "main-returns")
        _, notebook = figures(nb, "notebook-spawn")
        expect(program["finished"] == 0 and notebook["finished"] == 1,
               f"tasks finished: {program['finished']:.0f} after main returned, {notebook['finished']:.0f} in the notebook "
               f"(the prose: 0 and 1)")
        said = text(tagged(nb, "measure:no-runtime"))
        expect("the thread panicked: there is no reactor running, must be called from the context of a Tokio 1.x runtime" in said,
               f"tokio::spawn on a plain thread: {said[-200:]!r} (the prose: no reactor running)")
        said = " ".join(errors(tagged(nb, "measure:nested-runtime")))
        expect("Cannot start a runtime from within a runtime" in said,
               f"#[tokio::main] inside async code: {said[:200]!r} (the prose: the nested runtime panic)")
    elif stem.startswith("11"):
        check_server_lessons(nb, expect, run, cores)
    return failed


@pytest.mark.parametrize("path", LEARNER + SOLUTION, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_lesson_holds_on_this_machine(rustmeter_installed, path: Path) -> None:
    failed = check_lessons(executed(path), path.stem)
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", sorted(EXERCISES), ids=str)
def test_self_check_passes_on_the_solution_and_names_each_wrong_answer(rustmeter_installed, name: str) -> None:
    exercise = EXERCISES[name]
    nb = executed(INSTRUCTOR / "solutions" / f"{exercise['notebook']}.ipynb")
    own = text(tagged(nb, exercise["cell_tag_check"]))
    assert "✓" in own and "✗" not in own, f"solution's self-check:\n{own}"
    again = text(tagged(nb, f"check-after-other:{name}"))
    assert "✓" in again and "✗" not in again, f"solution's self-check after another cell:\n{again}"
    for kind in ("wrong-result", "wrong-way"):
        answer = tagged(nb, f"variant:{kind}:{name}")
        assert not errors(answer), f"{kind} answer failed to run: {errors(answer)}"
        said = text(tagged(nb, f"variant-check:{kind}:{name}"))
        hint = exercise["variants"][kind]["hint"]
        assert "✗" in said and hint in said, f"{kind}: expected ✗ and {hint!r}, got:\n{said}"


def test_learner_stubs_run_and_get_a_hint(rustmeter_installed) -> None:
    """The naive stubs run (Run All never aborts) and their self-checks say what to do,
    again when the check runs twice and after another cell."""
    for name, exercise in EXERCISES.items():
        nb = executed(NOTEBOOKS / f"{exercise['notebook']}.ipynb")
        for tag in (exercise["cell_tag_check"], f"check-again:{name}", f"check-after-other:{name}"):
            said = text(tagged(nb, tag))
            assert "✗" in said and "hint:" in said, f"{name} stub's self-check ({tag}):\n{said}"
        assert not errors(tagged(nb, f"other-cell:{name}"))


@pytest.mark.parametrize("path", LEARNER, ids=lambda p: p.stem)
def test_executed_html_shows_the_footer_under_its_cells(rustmeter_installed, path: Path) -> None:
    from nbconvert import HTMLExporter

    nb = executed(path)
    html, _ = HTMLExporter().from_notebook_node(nb)
    chunks = html.split('class="jp-Cell jp-CodeCell')[1:]
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert len(chunks) == len(code_cells)
    missing = []
    for cell, chunk in zip(code_cells, chunks):
        t = telemetry(cell)
        if t is None:
            continue
        footer_at = chunk.find("rustmeter-footer")
        source_at = chunk.find("jp-InputArea")
        if footer_at < 0 or footer_at < source_at:
            missing.append(cell.source.splitlines()[0] if cell.source else "?")
    assert not missing, f"footer missing or above its cell in the HTML of: {missing}"


def test_solution_command_only_when_the_instructor_enabled_it(rustmeter_installed) -> None:
    from jupyter_client.manager import KernelManager

    from kernel_helpers import run_cell, stream_text

    name = sorted(EXERCISES)[0]
    expected = (INSTRUCTOR / "solutions" / "rs" / f"{name}.rs").read_text().strip()
    for enabled in (False, True):
        km = KernelManager(kernel_name="rustmeter")
        env = dict(os.environ)
        env.pop("RUSTMETER_SOLUTIONS", None)
        if enabled:
            env["RUSTMETER_SOLUTIONS"] = str(INSTRUCTOR / "solutions" / "rs")
        km.start_kernel(env=env)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            reply, msgs = run_cell(kc, f":solution {name}")
            shown = json.dumps([m["content"] for m in msgs])
            if enabled:
                assert reply["content"]["status"] == "ok", shown
                assert expected.splitlines()[0] in shown
                reply, msgs = run_cell(kc, ":solution no-such-exercise")
                assert reply["content"]["status"] == "error"
                assert name in json.dumps([m["content"] for m in msgs]), "lists the available names"
            else:
                assert reply["content"]["status"] == "error", shown
                assert "not enabled" in shown and expected.splitlines()[0] not in shown
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
