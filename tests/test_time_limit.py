"""RUSTMETER_CELL_TIMEOUT through a real client: the kernel reads it from its environment
(the kernelspec's `env` in an installation); time spent waiting for the learner's input
does not count against it, running code does."""
from __future__ import annotations

import os
import time

import pytest

from kernel_helpers import KERNEL_NAME, STARTUP_TIMEOUT, run_cell, shell_reply


@pytest.fixture()
def limited_kernel(rustmeter_installed):
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, "RUSTMETER_CELL_TIMEOUT": "2s"})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_input_wait_does_not_count_but_running_code_does(limited_kernel):
    kc = limited_kernel
    reply, _ = run_cell(kc, ':dep evcxr_input = "1"', timeout=600)
    assert reply["content"]["status"] == "ok", reply["content"]
    msg_id = kc.execute('let answer = evcxr_input::get_string("Name? ");\nanswer.len()', allow_stdin=True)
    prompt = kc.get_stdin_msg(timeout=300)
    assert prompt["msg_type"] == "input_request"
    time.sleep(4)  # twice the limit, spent by the learner typing
    kc.input("Ada")
    reply = shell_reply(kc, msg_id, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]

    reply, _ = run_cell(kc, "std::thread::sleep(std::time::Duration::from_secs(8));")
    assert reply["content"]["status"] == "error"
    assert "RUSTMETER_CELL_TIMEOUT=2s" in reply["content"]["evalue"], reply["content"]
