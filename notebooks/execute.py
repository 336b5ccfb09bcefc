#!/usr/bin/env python3
"""Runs notebooks through the rustmeter kernel and shows what each cell measured.

    .venv/bin/python notebooks/execute.py notebooks/02-blocking.ipynb
    .venv/bin/python notebooks/execute.py --out notebooks/reference notebooks/0*.ipynb

For each code cell it prints the cell's tags, its first line, its status and the
footer's figures (run time, CPU cores, threads start→peak, peak memory growth), and the
last lines of what it printed. With `--out DIR` it also writes the executed notebook and
its HTML (nbconvert) there, with a note naming the machine it ran on — the instructor's
reference copies. Needs the project venv (nbclient, nbconvert).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TELEMETRY_MIME = "application/vnd.rustmeter.telemetry+json"


def telemetry(cell) -> dict | None:
    """The cell's final footer figures (the last telemetry display wins)."""
    found = None
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if TELEMETRY_MIME in data:
            found = data[TELEMETRY_MIME]
    return found


def printed(cell) -> str:
    """What the cell printed: streams, error names, and results' and displays' text
    (not the footer's)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
        elif "text/plain" in output.get("data", {}) and TELEMETRY_MIME not in output.data:
            parts.append(output.data["text/plain"].rstrip("\n") + "\n")
    return "".join(parts)


def machine() -> str:
    cores = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    return f"{platform.system()} {platform.release()}, {cores} cores, {mem:.0f} GB RAM"


def execute(path: Path, timeout: int = 900) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        startup_timeout=120,
        kernel_name="rustmeter",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def summary(nb) -> str:
    lines = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first = next((l for l in cell.source.splitlines() if l.strip()), "")[:60]
        tags = ",".join(cell.metadata.get("tags", []))
        t = telemetry(cell) or {}
        figures = "no telemetry"
        if t:
            cores = t.get("cpu_cores")
            figures = (
                f"{t.get('status')} run {t.get('run_ms', 0):.0f} ms, "
                f"compile {t.get('compile_ms', 0):.0f} ms, "
                f"cores {cores if cores is None else round(cores, 2)}, "
                f"threads {t.get('threads_start')}→{t.get('threads_peak')}, "
                f"rss +{(t.get('rss_peak_bytes', 0) - t.get('rss_start_bytes', 0)) / 2**20:.1f} MB"
            )
        lines.append(f"[{index:2}] {tags:28} {first}")
        lines.append(f"      {figures}")
        out = printed(cell).strip().splitlines()
        for line in out[-4:]:
            lines.append(f"      | {line[:110]}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write executed .ipynb and .html here")
    args = parser.parse_args()
    for path in args.notebooks:
        started = time.monotonic()
        nb = execute(path)
        print(f"== {path} ({time.monotonic() - started:.0f} s on {machine()})")
        print(summary(nb))
        if args.out:
            from nbconvert import HTMLExporter

            args.out.mkdir(parents=True, exist_ok=True)
            note = nbformat.v4.new_markdown_cell(
                f"*Reference run: executed on {time.strftime('%Y-%m-%d')} on {machine()}; "
                "your figures will differ with your machine and its load.*"
            )
            nb.cells.insert(0, note)
            nbformat.write(nb, args.out / path.name)
            html, _ = HTMLExporter().from_notebook_node(nb)
            (args.out / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
