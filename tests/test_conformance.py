"""The Jupyter kernel conformance suite, one pytest test per jupyter_kernel_test test.

tests/conformance_suite.py runs in a subprocess, once per pytest session, under a hard
time limit: jupyter_kernel_test has calls that would otherwise wait forever on a kernel
that never answers. Each outcome it records becomes the outcome of the matching test here.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Imported as a module, not `from ... import KernelTests`: pytest would collect that
# TestCase and run it against the python3 kernel.
import jupyter_kernel_test

HERE = Path(__file__).resolve().parent
SUITE = HERE / "conformance_suite.py"
SUITE_TIMEOUT = 900  # hard limit for the whole suite, in seconds
CONFORMANCE_TESTS = sorted(
    name for name in dir(jupyter_kernel_test.KernelTests) if name.startswith("test_")
)


@pytest.fixture(scope="module")
def conformance(rustmeter_installed, tmp_path_factory):
    """Runs the suite once; returns (outcomes by test name, suite output, how it ended)."""
    results = tmp_path_factory.mktemp("conformance") / "results.jsonl"
    env = dict(os.environ)
    env["RUSTMETER_CONFORMANCE_RESULTS"] = str(results)
    env["RUSTMETER_CONFORMANCE_DEADLINE"] = str(SUITE_TIMEOUT - 60)
    proc = subprocess.Popen(
        [sys.executable, str(SUITE)],
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=SUITE_TIMEOUT)
        ended = f"exit status {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        ended = f"killed after {SUITE_TIMEOUT}s"
    # Shown by pytest -s, and in the captured output of any failing test below.
    print(f"----- conformance suite ({ended}) -----\n{output}")

    outcomes: dict[str, list[dict]] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            record = json.loads(line)
            outcomes.setdefault(record["test"], []).append(record)
    return outcomes, output, ended


@pytest.mark.parametrize("name", CONFORMANCE_TESTS)
def test_conformance(name: str, conformance) -> None:
    outcomes, output, ended = conformance
    records = outcomes.get(name)
    if not records:
        class_errors = outcomes.get("setUpClass") or outcomes.get("tearDownClass")
        if class_errors:
            pytest.fail(
                f"{name} did not run: the suite's setUpClass failed:\n"
                + "\n".join(r["detail"] for r in class_errors)
            )
        pytest.fail(f"{name} did not run (suite {ended}); suite output:\n{output[-4000:]}")

    failures = [r for r in records if r["outcome"] in ("fail", "error")]
    if failures:
        pytest.fail(
            "\n".join(
                f"{name} {r['subtest']} {r['outcome'].upper()}:\n{r['detail']}"
                for r in failures
            ),
            pytrace=False,
        )
    if not any(r["outcome"] == "pass" for r in records):
        pytest.skip("; ".join(f"{r['subtest']} {r['detail']}".strip() for r in records))
