"""A cell's run time is measured where the code runs: the user-code process stamps the
start and end of the run with the machine's monotonic clock, so a kernel that reads those
moments late (a loaded machine, a class) still reports what happened. A cell cannot run
shorter than the sleep it makes, and the footer must never say it did.
"""
from __future__ import annotations

from kernel_helpers import busy_loops, run_cell

SLEEP_CELL = "std::thread::sleep(std::time::Duration::from_millis(800));"
RUNS = 10


def test_an_800_ms_sleep_runs_800_to_900_ms_on_a_loaded_machine(km_kc):
    _, kc = km_kc
    reply, _ = run_cell(kc, SLEEP_CELL)  # compiled and loaded once before the load starts
    assert reply["content"]["status"] == "ok", reply["content"]
    run_ms = []
    with busy_loops(2):
        for _ in range(RUNS):
            reply, _ = run_cell(kc, SLEEP_CELL)
            assert reply["content"]["status"] == "ok", reply["content"]
            telemetry = reply["metadata"].get("rustmeter")
            assert telemetry, f"no telemetry in the execute_reply's metadata: {reply['metadata']}"
            run_ms.append(float(telemetry["run_ms"]))
    short = [ms for ms in run_ms if ms < 800]
    long = [ms for ms in run_ms if ms > 900]
    assert not short, f"runs reported shorter than the 800 ms the cell slept: {run_ms}"
    assert not long, f"runs reported over 900 ms for an 800 ms sleep: {run_ms}"
