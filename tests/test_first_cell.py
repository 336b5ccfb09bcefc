"""The first cell of a fresh kernel, without a warm spare: what every first launch after an
install or a reboot, and every launch in class mode, gets.

- A cell sent right after launch runs; its footer says it waited for the kernel to warm up
  (not a bare "waited"), and its telemetry splits that warm-up step by step.
- rust-analyzer's first analysis waits until no cell does.
- Cells run when the kernel's build folder and the Rust toolchain share a parent folder,
  as `~/.cache/rustmeter` and `~/.rustup` do for every single-user install.

Timing goals live in bench/compare; these tests check behaviour only.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kernel_helpers import KERNEL_NAME, result_data, run_cell, stream_text

TELEMETRY_MIME = "application/vnd.rustmeter.telemetry+json"


@contextlib.contextmanager
def fresh_kernel(**env: str):
    """A kernel launched as Jupyter launches one, no spare; yields its client at once,
    before the kernel has answered anything."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, "RUSTMETER_SPARE": "0", **env})
    kc = km.client()
    kc.start_channels()
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def footer(iopub) -> tuple[str, dict]:
    """The footer's text and its telemetry."""
    for msg in iopub:
        data = msg["content"].get("data", {})
        if TELEMETRY_MIME in data:
            return data.get("text/plain", ""), data[TELEMETRY_MIME]
    raise AssertionError(f"no footer among {[m['msg_type'] for m in iopub]}")


def test_a_cell_sent_at_launch_runs_and_its_footer_names_the_warm_up(rustmeter_installed):
    with fresh_kernel() as kc:
        time.sleep(0.1)
        reply, iopub = run_cell(kc, 'println!("hi");')
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_text(iopub) == "hi\n"
        text, telemetry = footer(iopub)

        warm_up = telemetry.get("warm_up")
        assert warm_up, f"the first cell waited for the start-up, its telemetry says nothing: {telemetry}"
        steps = dict(warm_up["steps"])
        assert {"evcxr_start", "prelude"} <= set(steps), steps
        assert all(ms > 0 for ms in steps.values()), steps
        assert "analysis" not in steps, f"rust-analyzer's first analysis ran before a waiting cell: {steps}"
        waited = warm_up["waited_ms"]
        assert 0 < waited <= telemetry["queue_ms"] + 1e-6, (waited, telemetry["queue_ms"])

        # The footer's words carry the telemetry's figure, not a bare "waited".
        named = re.search(r"waited ([\d.]+) s for the kernel to warm up", text)
        assert named, text
        assert abs(float(named.group(1)) * 1000 - waited) <= 100, (text, waited)
        assert "before starting" not in text, f"the whole wait was the warm-up: {text}"

        # The next cell needs rust-analyzer (a `let`): it runs, and a wait for the deferred
        # analysis is named the same way.
        reply, iopub = run_cell(kc, "let x: u64 = 40 + 2;\nx")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert (result_data(iopub) or {}).get("text/plain", "").strip() == "42"
        text, telemetry = footer(iopub)
        later = telemetry.get("warm_up")
        if later:
            assert [name for name, _ in later["steps"]] == ["analysis"], later
            if later["waited_ms"] >= 250:
                assert "for the kernel to warm up" in text, text


def test_cells_run_when_the_build_folder_and_the_toolchain_share_a_parent(rustmeter_installed):
    # evcxr gives each cell's library a relative search path one folder too deep: harmless
    # when the path climbs past `/`, fatal (`dlopen failed`) when it stops short.
    sysroot = Path(subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip())
    if len(sysroot.parents) < 3 or sysroot.parent.name != "toolchains":
        pytest.skip(f"the toolchain {sysroot} is not a rustup toolchain")
    shared = sysroot.parents[2]  # <rustup home>/toolchains/<toolchain> -> beside the rustup home
    if not os.access(shared, os.W_OK):
        pytest.skip(f"cannot make a cache folder beside the toolchain in {shared}")
    cache = tempfile.mkdtemp(prefix=".rustmeter-test-cache-", dir=shared)
    try:
        # Both folders there: the kernel's build folder is under its runtime folder.
        with fresh_kernel(RUSTMETER_CACHE_DIR=cache, RUSTMETER_RUNTIME_DIR=os.path.join(cache, "run")) as kc:
            reply, iopub = run_cell(kc, 'println!("beside the toolchain");')
            assert reply["content"]["status"] == "ok", reply["content"]
            assert stream_text(iopub) == "beside the toolchain\n"
    finally:
        shutil.rmtree(cache, ignore_errors=True)
