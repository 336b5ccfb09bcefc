"""Executes notebooks/00-smoke.ipynb with nbclient on the rustmeter kernel, the way a
person running it top to bottom in JupyterLab would, and checks each cell's outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from kernel_helpers import NOTEBOOKS, STARTUP_TIMEOUT

NOTEBOOK = NOTEBOOKS / "00-smoke.ipynb"
# Per cell: the async cell builds tokio and the :dep cell builds itoa in the kernel.
CELL_TIMEOUT = 600


def test_notebook_is_clean() -> None:
    """The committed notebook is valid nbformat 4, uses rustmeter, and has no outputs."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "rustmeter"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {cell.id} has outputs committed"
            assert cell.execution_count is None, f"cell {cell.id} has an execution count"


@pytest.fixture(scope="module")
def executed(rustmeter_installed, kernel_name: str, tmp_path_factory) -> dict:
    """Runs the notebook once; returns its code cells by id (outputs filled in)."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name=kernel_name,
        allow_errors=True,  # run every cell; each test below reports on its own cell
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    out = tmp_path_factory.mktemp("notebooks") / NOTEBOOK.name
    nbformat.write(nb, out)
    print(f"executed notebook written to {out}")
    return {cell.id: cell for cell in nb.cells if cell.cell_type == "code"}


def _errors(cell) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}\n" + "\n".join(o.get("traceback", []))
        for o in cell.outputs
        if o.output_type == "error"
    ]


def _text(cell, mime: str = "text/plain") -> str:
    """Everything the cell printed plus the `mime` parts of its results and displays."""
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.data.get(mime, ""))
    return "".join(parts)


def _result(cell) -> str | None:
    for o in cell.outputs:
        if o.output_type == "execute_result":
            return o.data.get("text/plain")
    return None


def test_no_cell_errors(executed) -> None:
    failing = {cid: _errors(cell) for cid, cell in executed.items() if _errors(cell)}
    assert not failing, "cells with error outputs:\n" + "\n".join(
        f"[{cid}] " + "\n".join(errs) for cid, errs in failing.items()
    )


def test_every_cell_ran(executed) -> None:
    not_run = [cid for cid, cell in executed.items() if cell.execution_count is None]
    assert not not_run, f"cells without an execution_count: {not_run}"


def test_variable_persists_between_cells(executed) -> None:
    cell = executed["show-x"]
    assert not _errors(cell)
    assert _result(cell) == "42", cell.outputs


def test_async_cell(executed) -> None:
    cell = executed["async-sleep"]
    assert not _errors(cell), _errors(cell)
    assert "slept" in _text(cell), cell.outputs


def test_dep_cell(executed) -> None:
    cell = executed["dep-itoa"]
    assert not _errors(cell), _errors(cell)
    result = _result(cell)
    assert result is not None and "42" in result, cell.outputs


def test_rich_html_output(executed) -> None:
    cell = executed["rich-html"]
    assert not _errors(cell), _errors(cell)
    html = [
        o.data["text/html"]
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result") and "text/html" in o.data
    ]
    assert html, f"no text/html output: {cell.outputs}"
    assert "<b>hi</b>" in "".join(html)
    assert "EVCXR_BEGIN_CONTENT" not in _text(cell), "the rich-output markers leaked into the text"
