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


def test_console_shows_cells_not_the_kernel_log(rustmeter_installed, kernel_name):
    with tempfile.TemporaryDirectory(prefix="rm-console-") as cache:
        env = dict(os.environ, RUSTMETER_CACHE_DIR=cache, TERM="dumb")
        env.pop("RUSTMETER_LOG", None)
        console = pexpect.spawn(
            sys.executable,
            ["-m", "jupyter_console", "--kernel", kernel_name, "--simple-prompt"],
            env=env,
            encoding="utf-8",
            timeout=240,
            dimensions=(50, 200),
        )
        transcript = []
        console.logfile_read = _Collect(transcript)
        try:
            console.expect(r"In \[1\]: ")
            console.sendline('let greeting = "hello";')
            console.expect(r"In \[2\]: ")
            # An uncached crate: cargo compiles it (and its build script) in this kernel.
            console.sendline(':dep itoa = "1"')
            console.expect(r"In \[3\]: ")
            # What the console hid stays one command away.
            console.sendline(":last_build_log")
            console.expect(r"In \[4\]: ")
            console.sendline("itoa::Buffer::new().format(6 * 7).to_string()")
            console.expect(r"In \[5\]: ")
            console.sendeof()  # Ctrl-D: the console asks nothing more with --simple-prompt
            console.expect([pexpect.EOF, r"\(\[y\]/n\)"])
            if console.isalive():
                console.sendline("y")
                console.expect(pexpect.EOF)
        finally:
            console.close(force=True)
    text = ANSI.sub("", "".join(transcript))
    assert '"42"' in text, text
    assert "✓ ran" in text, f"no footer:\n{text}"
    before, _, after = text.partition(":last_build_log")
    build_log, _, later = after.partition("In [4]:")
    shown = before + later.partition("Do you really want to exit")[0]
    # While cells run, the kernel's stderr carries one line for the operator: the start.
    kernel_lines = [line for line in shown.splitlines() if line.startswith("[rustmeter]")]
    assert len(kernel_lines) == 1 and " started (pid " in kernel_lines[0], kernel_lines
    for noise in ("Compiling", "warmed in", "Finished"):
        assert noise not in shown, f"{noise!r} in the console:\n{text}"
    assert re.search(r"Compiling itoa v1\.", build_log), f"no cargo lines:\n{build_log}"


class _Collect:
    def __init__(self, into: list[str]):
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass
