"""Soak: many cells in one session keep the kernel's RSS flat (at most 20 MB
growth), leak no file descriptors or threads, and every cell has its telemetry.

Runs bench/soak's code with RUSTMETER_SOAK_CELLS cells (default 150, about a minute and a
half here); `bench/soak --cells 500` is the full run. Uses RUSTMETER_BIN or the repo's
target/release/rustmeter.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_soak():
    path = ROOT / "bench" / "soak"
    loader = importlib.machinery.SourceFileLoader("rustmeter_soak", str(path))
    spec = importlib.util.spec_from_loader("rustmeter_soak", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_many_cells_keep_the_kernel_flat_and_every_cell_measured(capsys):
    soak = load_soak()
    if not os.access(soak.BIN, os.X_OK):
        pytest.skip(f"no kernel binary at {soak.BIN}; build it or set RUSTMETER_BIN")
    cells = int(os.environ.get("RUSTMETER_SOAK_CELLS", "150"))
    figures = soak.run(cells)
    with capsys.disabled():
        print("\nsoak:", soak.summary(figures))
    assert figures["cells"] == cells
    assert len(figures["samples"]) >= 1
    assert soak.problems(figures) == []
