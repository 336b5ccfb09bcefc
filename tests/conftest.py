"""pytest fixtures for rustmeter's Jupyter-level tests.

Run through scripts/test.sh, which installs the kernel and its kernelspec first. Run by
hand, tests that need the kernel skip with the reason when it is not installed.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_helpers import (  # noqa: E402  (re-exported for the test modules)
    KERNEL_NAME,
    STARTUP_TIMEOUT,
    describe,
    kernel_unavailable_reason,
    outputs,
    result_data,
    run_cell,
    stream_text,
)

# Warm spare kernels (a launch served by an already warm kernel) are tested on their own in
# test_spare.py; every other test expects each launch to start its own kernel. Kernels
# inherit this unless a test sets it.
os.environ.setdefault("RUSTMETER_SPARE", "0")

__all__ = ["run_cell", "outputs", "stream_text", "result_data", "describe"]


@pytest.fixture(scope="session")
def kernel_name() -> str:
    return KERNEL_NAME


@pytest.fixture(scope="session")
def rustmeter_installed(kernel_name: str) -> None:
    """Skips the requesting test when the rustmeter kernel can't be started here."""
    reason = kernel_unavailable_reason(kernel_name)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def km_kc(rustmeter_installed, kernel_name: str):
    """One rustmeter kernel for the whole session: yields (KernelManager, BlockingKernelClient)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=STARTUP_TIMEOUT)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
