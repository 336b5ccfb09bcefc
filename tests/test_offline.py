"""`:dep` when cargo works offline (CARGO_NET_OFFLINE=true, as a class install sets): a crate
that was never downloaded to this machine is refused before cargo runs, with a message
naming offline mode and the crates that are available; a downloaded crate still builds.
"""
from __future__ import annotations

import os
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from kernel_helpers import KERNEL_NAME, STARTUP_TIMEOUT, result_data, run_cell

NEVER_DOWNLOADED = "rustmeter-never-published"


def test_dep_of_a_crate_never_downloaded_is_refused_at_once_offline(rustmeter_installed):
    registry = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "registry" / "cache"
    assert not list(registry.glob(f"*/{NEVER_DOWNLOADED}-*.crate")), "the test's crate must not be downloaded"
    # bytes comes with tokio ("full"), which the kernel's async cells and prewarm download.
    assert list(registry.glob("*/bytes-1.*.crate")), f"bytes (a tokio dependency) must be downloaded in {registry}"
    km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=STARTUP_TIMEOUT,
                              env={**os.environ, "CARGO_NET_OFFLINE": "true"})
    try:
        reply, _ = run_cell(kc, f':dep {NEVER_DOWNLOADED} = "1"')
        content = reply["content"]
        assert content["status"] == "error" and content["ename"] == "dependency error", content
        said = content["evalue"]
        for words in (f":dep {NEVER_DOWNLOADED}", "CARGO_NET_OFFLINE=true", "offline mode",
                      "Crates available offline:", "bytes", "tokio"):
            assert words in said, f"{words!r} missing from: {said[:400]}"
        # Refused before any build: the cell's telemetry counts no rustc run.
        telemetry = reply["metadata"].get("rustmeter") or {}
        assert not (telemetry.get("compile_parts") or {}).get("cell_builds"), telemetry

        reply, iopub = run_cell(kc, ':dep bytes = "1"\nbytes::Bytes::from_static(b"offline").len()')
        assert reply["content"]["status"] == "ok", reply["content"]
        assert (result_data(iopub) or {}).get("text/plain", "").strip() == "7"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
