"""`jupyter console` in a real terminal (pexpect): the learner sees prompts, results and
footers, and of the kernel's own log only its one start line — no cargo `Compiling …`
lines, no warm-up timings — even across a `:dep` of a crate no cache holds yet."""
from __future__ import annotations

import os
import re
import sys
import tempfile

import pytest

pexpect = pytest.importorskip("pexpect")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_console(kernel_name: str, env: dict, cells: list[str], cwd: str | None = None) -> str:
    """Drives `jupyter console` in a terminal (in `cwd`, with exactly `env`) through
    `cells`, then Ctrl-D; returns what the terminal showed, without colour codes."""
    console = pexpect.spawn(
        sys.executable,
        ["-m", "jupyter_console", "--kernel", kernel_name, "--simple-prompt"],
        env=env,
        cwd=cwd,
        encoding="utf-8",
        timeout=240,
        dimensions=(50, 200),
    )
    transcript: list[str] = []
    console.logfile_read = _Collect(transcript)
    try:
        console.expect(r"In \[1\]: ")
        for n, cell in enumerate(cells, start=2):
            console.sendline(cell)
            console.expect(rf"In \[{n}\]: ")
        console.sendeof()  # Ctrl-D: the console asks nothing more with --simple-prompt
        console.expect([pexpect.EOF, r"\(\[y\]/n\)"])
        if console.isalive():
            console.sendline("y")
            console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    return ANSI.sub("", "".join(transcript))


def split_build_log(text: str, cell_number: int) -> tuple[str, str]:
    """(what the console showed while cells ran, the `:last_build_log` output) of a
    transcript whose cell `cell_number` was `:last_build_log`."""
    before, _, after = text.partition(":last_build_log")
    build_log, _, later = after.partition(f"In [{cell_number + 1}]:")
    return before + later.partition("Do you really want to exit")[0], build_log


def assert_quiet(shown: str, start_line: str) -> None:
    """While cells run, the kernel's stderr carries one line: its start (`start_line` is
    part of it)."""
    kernel_lines = [line for line in shown.splitlines() if line.startswith("[rustmeter]")]
    assert len(kernel_lines) == 1 and start_line in kernel_lines[0], kernel_lines
    for noise in ("Compiling", "warmed in", "Finished"):
        assert noise not in shown, f"{noise!r} in the console:\n{shown}"


def test_console_shows_cells_not_the_kernel_log(rustmeter_installed, kernel_name):
    with tempfile.TemporaryDirectory(prefix="rm-console-") as cache:
        env = dict(os.environ, RUSTMETER_CACHE_DIR=cache, TERM="dumb")
        env.pop("RUSTMETER_LOG", None)
        # An uncached crate: cargo compiles it (and its build script) in this kernel;
        # what the console hid stays one command away (`:last_build_log`).
        text = run_console(kernel_name, env, [
            'let greeting = "hello";',
            ':dep itoa = "1"',
            ":last_build_log",
            "itoa::Buffer::new().format(6 * 7).to_string()",
        ])
    assert '"42"' in text, text
    assert "✓ ran" in text, f"no footer:\n{text}"
    shown, build_log = split_build_log(text, 3)
    assert_quiet(shown, " started (pid ")
    assert re.search(r"Compiling itoa v1\.", build_log), f"no cargo lines:\n{build_log}"


class _Collect:
    def __init__(self, into: list[str]):
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass
