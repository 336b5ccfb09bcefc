"""What the process that runs a learner's cells gets from rustmeter before any cell: an
open-files limit raised to the hard limit, whatever soft limit the kernel was started with
(the tutorials open up to 20,000 connections in one cell; a shell's soft limit is often
1,024 and Jupyter's 4,096)."""
from __future__ import annotations

import os
import resource

from kernel_helpers import describe, launched_kernel, result_data, run_cell

READ_LIMIT = """{
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    format!("{} {}", numbers[0], numbers[1])
}"""


def test_cells_run_with_the_open_files_limit_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        with launched_kernel(env=dict(os.environ, RUSTMETER_SPARE="0")) as (_, client):
            reply, messages = run_cell(client, READ_LIMIT)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert reply["content"]["status"] == "ok", describe(messages)
    said = (result_data(messages) or {}).get("text/plain", "").strip('"')
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert said == f"{shown_hard} {shown_hard}", \
        f"the cell process's open files limit (soft hard) is {said!r}; started with {lowered} {hard}, expected the hard limit"
