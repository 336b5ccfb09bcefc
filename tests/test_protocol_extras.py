"""Protocol pieces the conformance suite does not cover: stdin prompts, comms, and the
interrupt a real client sends (jupyter_client's KernelManager.interrupt_kernel, which
uses interrupt_mode "message" from the kernelspec)."""
from __future__ import annotations

import threading
import time

from kernel_helpers import run_cell, shell_reply, stream_text


def test_input_request_round_trip(km_kc):
    _, kc = km_kc
    reply, _ = run_cell(kc, ':dep evcxr_input = "1"', timeout=600)
    assert reply["content"]["status"] == "ok", reply["content"]
    msg_id = kc.execute('let name = evcxr_input::get_string("Name? ");\nprintln!("hello {name}");', allow_stdin=True)
    prompt = kc.get_stdin_msg(timeout=300)
    assert prompt["msg_type"] == "input_request"
    assert prompt["content"]["prompt"] == "Name? "
    assert prompt["content"]["password"] is False
    kc.input("Ada")
    reply = shell_reply(kc, msg_id, timeout=300)
    assert reply["content"]["status"] == "ok"


def test_input_without_stdin_says_why(km_kc):
    _, kc = km_kc
    reply, msgs = run_cell(kc, 'let v = evcxr_input::get_string("Name? "); v.len()', allow_stdin=False)
    assert reply["content"]["status"] == "ok"
    assert "allow_stdin is false" in stream_text(msgs, "stderr")


def test_comm_open_to_unknown_target_is_closed(km_kc):
    _, kc = km_kc
    msg = kc.session.msg("comm_open", {"comm_id": "c-1", "target_name": "nobody", "data": {}})
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=30)
        if m["parent_header"].get("msg_id") == msg["header"]["msg_id"] and m["msg_type"] == "comm_close":
            assert m["content"]["comm_id"] == "c-1"
            break
    else:
        raise AssertionError("no comm_close")
    kc.comm_info()
    info = kc.get_shell_msg(timeout=30)
    assert info["content"] == {"status": "ok", "comms": {}}


def test_interrupt_from_the_kernel_manager(km_kc):
    km, kc = km_kc
    assert km.kernel_spec.interrupt_mode == "message"
    run_cell(kc, "let before = 1;")
    msg_id = kc.execute("loop { std::hint::spin_loop(); }")
    timer = threading.Timer(4.0, km.interrupt_kernel)
    timer.start()
    reply = shell_reply(kc, msg_id, timeout=120)
    timer.join()
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "interrupted"
    reply, msgs = run_cell(kc, "2 + 2")
    assert reply["content"]["status"] == "ok"


def test_interrupt_while_waiting_for_input(km_kc):
    km, kc = km_kc
    reply, _ = run_cell(kc, ':dep evcxr_input = "1"', timeout=600)
    assert reply["content"]["status"] == "ok"
    msg_id = kc.execute('let answer = evcxr_input::get_string("Still there? ");\nanswer.len()', allow_stdin=True)
    prompt = kc.get_stdin_msg(timeout=300)
    assert prompt["msg_type"] == "input_request"
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id, timeout=30)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "interrupted"
    reply, _ = run_cell(kc, "3 + 3")
    assert reply["content"]["status"] == "ok"
