"""Graded assignments: the shipped nbgrader assignment (notebooks/nbgrader/) through
nbgrader's own commands and the real rustmeter kernel.

In a fresh course folder (a copy of notebooks/nbgrader/):

- `nbgrader generate_assignment` makes a student version with the Rust stub
  (`// YOUR CODE HERE` + `todo!()`) in place of every solution, and no solution code;
- two submissions, `correct` (the solutions) and `wrong` (exercise 1 with a thread per
  request: right answers, caught only by the telemetry test; exercise 2 with a wrong
  answer), go through `nbgrader autograde`, which runs each in a rustmeter kernel;
- the gradebook and `nbgrader export` agree: `correct` gets every point, `wrong` loses
  exactly the telemetry test's and the wrong answer's points, and the failing test cells
  say why;
- `nbgrader generate_feedback` writes HTML with the scores and the cells' telemetry
  footers.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from kernel_helpers import NOTEBOOKS

COURSE_SOURCE = NOTEBOOKS / "nbgrader"
ASSIGNMENT = "async-exercises"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
STUB = "// YOUR CODE HERE\ntodo!()"
# Every nbgrader command, autograde included (two kernels, each compiling its cells).
COMMAND_TIMEOUT = 900

# What the wrong submission writes in place of each stub.
WRONG = {
    # Right answers in the right order, in time — but a thread per request.
    "fetch-all": """let runtime = tokio::runtime::Handle::current();
let threads: Vec<_> = ids
    .into_iter()
    .map(|id| {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.block_on(get(addr, id)))
    })
    .collect();
threads.into_iter().map(|t| t.join().unwrap()).collect()""",
    # Gives up in time, but answers 0 instead of None.
    "ask-within": "Some(tokio::time::timeout(limit, ask(addr, request)).await.unwrap_or(0))",
}
WRONG_FAILS = {"test-fetch-all-tasks", "test-ask-within-answers"}


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs `nbgrader ARGS` in the course folder with this Python's environment; fails the
    test with nbgrader's output when it exits non-zero."""
    env = dict(os.environ)
    # nbgrader runs `alembic` (its database migrations) from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    print(f"nbgrader {' '.join(args)}: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, f"nbgrader {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    # nbgrader logs a failed notebook and still exits 0 for some steps.
    assert "[ERROR]" not in done.stderr and "| ERROR]" not in done.stderr, done.stderr
    return done


def solution_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


def solution_body(source: str) -> str:
    """The lines between `// BEGIN SOLUTION` and `// END SOLUTION`, dedented."""
    lines = source.split("\n")
    begin = next(i for i, l in enumerate(lines) if "BEGIN SOLUTION" in l)
    end = next(i for i, l in enumerate(lines) if "END SOLUTION" in l)
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    return "\n".join(l[indent:] for l in lines[begin + 1 : end])


def submit(course: Path, student: str, release, bodies: dict[str, str]) -> None:
    """Writes STUDENT's submission: the student version with each stub replaced by the
    body given for that cell (indented like the stub)."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    cells = solution_cells(nb)
    assert set(cells) == set(bodies), f"solution cells {sorted(cells)}, bodies for {sorted(bodies)}"
    for grade_id, cell in cells.items():
        lines = cell.source.split("\n")
        at = next(i for i, l in enumerate(lines) if "YOUR CODE HERE" in l)
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        stub_lines = STUB.count("\n") + 1
        body = [indent + l if l else l for l in bodies[grade_id].split("\n")]
        cell.source = "\n".join(lines[:at] + body + lines[at + stub_lines :])
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / NOTEBOOK)


def test_assignment_round_trip(rustmeter_installed, tmp_path: Path):
    course = tmp_path / "course"
    # Only what is committed: an instructor may have used the folder in place.
    (course / "source").mkdir(parents=True)
    shutil.copy(COURSE_SOURCE / "nbgrader_config.py", course)
    shutil.copytree(COURSE_SOURCE / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    source_nb = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    assert source_nb.metadata.kernelspec["name"] == "rustmeter"
    assert source_nb.metadata.kernelspec["language"] == "rust"

    # ------------------------------------------------ the student version
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    sources = solution_cells(source_nb)
    released = solution_cells(release)
    assert set(released) == set(sources) == set(WRONG)
    for grade_id, cell in released.items():
        # Exactly the source with its solution region replaced by the stub.
        lines = sources[grade_id].source.split("\n")
        begin = next(i for i, l in enumerate(lines) if "BEGIN SOLUTION" in l)
        end = next(i for i, l in enumerate(lines) if "END SOLUTION" in l)
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        expected = lines[:begin] + [indent + l for l in STUB.split("\n")] + lines[end + 1 :]
        assert cell.source == "\n".join(expected), f"{grade_id}, student version:\n{cell.source}"
    student_text = json.dumps(release)
    for grade_id, cell in sources.items():
        for line in solution_body(cell.source).split("\n"):
            assert len(line.strip()) < 12 or line.strip() not in student_text, f"{grade_id}: {line!r} in the student version"

    # ------------------------------------------------ two submissions, graded
    submit(course, "correct", release, {g: solution_body(c.source) for g, c in sources.items()})
    submit(course, "wrong", release, WRONG)
    nbgrader(course, "autograde", ASSIGNMENT)

    from nbgrader.api import Gradebook

    tests = {
        c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
        for c in source_nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    max_score = sum(tests.values())
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {}
        for student in ("correct", "wrong"):
            submission = gb.find_submission(ASSIGNMENT, student)
            assert submission.max_score == max_score
            scores[student] = submission.score
            per_test = {g: gb.find_grade(g, ASSIGNMENT, ASSIGNMENT, student).score for g in tests}
            print(f"{student}: {submission.score} / {submission.max_score} {per_test}")
            if student == "correct":
                assert per_test == tests, per_test
            else:
                failed = {g for g, points in per_test.items() if points < tests[g]}
                assert failed == WRONG_FAILS, per_test
    assert scores["correct"] == max_score
    assert scores["wrong"] == max_score - sum(tests[g] for g in WRONG_FAILS) < max_score

    # The failing test cells say why, in the graded notebook.
    graded = nbformat.read(course / "autograded" / "wrong" / ASSIGNMENT / NOTEBOOK, as_version=4)
    errors = {
        c.metadata.nbgrader["grade_id"]: "\n".join(o.get("evalue", "") for o in c.outputs if o.output_type == "error")
        for c in graded.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    }
    assert "use tokio::spawn tasks" in errors["test-fetch-all-tasks"], errors
    assert "must give None" in errors["test-ask-within-answers"], errors
    assert not errors["test-fetch-all-answers"] and not errors["test-fetch-all-time"], errors

    # ------------------------------------------------ the export an instructor reads
    nbgrader(course, "export", "--to", str(tmp_path / "grades.csv"))
    with open(tmp_path / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert float(rows["correct"]["score"]) == max_score == float(rows["correct"]["max_score"])
    assert float(rows["wrong"]["score"]) == scores["wrong"]

    # ------------------------------------------------ feedback
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    for student in ("correct", "wrong"):
        html = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        total = f"{ASSIGNMENT} (Score: {float(scores[student]):.1f} / {float(max_score):.1f})"
        assert total in html, f"{student}: {total!r} not in the feedback"
        assert "✓ ran" in html, f"{student}: no telemetry footer in the feedback"
