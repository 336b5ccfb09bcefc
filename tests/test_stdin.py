"""A cell's standard input is the notebook's input box: a read of fd 0 in the user-code
process becomes an `input_request` whose prompt is what the cell printed last without a
newline, and the reply is what the read returns, with its newline. Clients that take no
input (`allow_stdin: false`, nbclient) get an error saying so at once, never a hang."""
from __future__ import annotations

import time
from queue import Empty
from typing import Any

import pytest

from kernel_helpers import run_cell, shell_reply, stream_text

STARTUP_TIMEOUT = 300
READ_LINE = """let mut s = String::new();
std::io::stdin().read_line(&mut s).unwrap();
println!("got [{}]", s.trim());"""


@pytest.fixture(scope="module")
def kc(rustmeter_installed, kernel_name):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=STARTUP_TIMEOUT)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_with_answers(kc: Any, code: str, answers: list[str], timeout: float = 300):
    """Runs `code` with stdin allowed, answering each input_request with the next answer.

    Returns (reply, iopub messages of the cell, the input_requests' contents)."""
    msg_id = kc.execute(code, allow_stdin=True)
    prompts: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    reply = None
    while reply is None:
        assert time.monotonic() < deadline, f"no reply within {timeout}s; prompts {prompts}"
        try:
            request = kc.get_stdin_msg(timeout=0.2)
        except Empty:
            request = None
        if request is not None:
            assert request["msg_type"] == "input_request", request
            assert request["parent_header"]["msg_id"] == msg_id
            prompts.append(request["content"])
            assert answers, f"asked more often than expected: {prompts}"
            kc.input(answers.pop(0))
        try:
            candidate = kc.get_shell_msg(timeout=0.05)
        except Empty:
            continue
        if candidate["parent_header"].get("msg_id") == msg_id:
            reply = candidate
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply, messages, prompts


def test_read_line_asks_the_client_once_and_gets_the_typed_line(kc):
    _, client = kc
    reply, messages, prompts = run_with_answers(client, READ_LINE, ["Ada Lovelace"])
    assert reply["content"]["status"] == "ok", reply["content"]
    assert prompts == [{"prompt": "", "password": False}]
    assert "got [Ada Lovelace]" in stream_text(messages), messages


def test_the_prompt_is_what_the_cell_printed_last_without_a_newline(kc):
    _, client = kc
    code = """println!("Two questions.");
print!("first: ");
let mut a = String::new();
std::io::stdin().read_line(&mut a).unwrap();
print!("second (a: b)? ");
let mut b = String::new();
std::io::stdin().read_line(&mut b).unwrap();
println!("{a:?} {b:?}");"""
    reply, messages, prompts = run_with_answers(client, code, ["one", "two 100%"])
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [p["prompt"] for p in prompts] == ["first: ", "second (a: b)? "]
    out = stream_text(messages)
    # Each read returns the line with its newline, as a terminal gives it; the prompts
    # are the input box's, not printed a second time.
    assert '"one\\n" "two 100%\\n"' in out, out
    assert "Two questions." in out and "first:" not in out, out


def test_lines_and_a_library_reading_fd_0_are_asked_too(kc):
    _, client = kc
    code = """use std::io::{BufRead, Read};
let first = std::io::stdin().lock().lines().next().unwrap().unwrap();
let mut bytes = [0u8; 4];
std::io::stdin().read_exact(&mut bytes).unwrap();
println!("{first} {:?}", String::from_utf8_lossy(&bytes));"""
    reply, messages, prompts = run_with_answers(client, code, ["alpha", "xyz"])
    assert reply["content"]["status"] == "ok", reply["content"]
    assert len(prompts) == 2
    # The answer's newline is part of what the read returns, as from a terminal.
    assert 'alpha "xyz\\n"' in stream_text(messages), stream_text(messages)


def test_tokio_stdin_in_an_async_cell(kc):
    _, client = kc
    reply, _ = run_cell(client, ':dep tokio = { version = "1", features = ["full"] }', timeout=900)
    assert reply["content"]["status"] == "ok", reply["content"]
    code = """use tokio::io::AsyncBufReadExt;
print!("async> ");
let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
let line = lines.next_line().await.unwrap().unwrap_or_default();
println!("async got [{line}]");"""
    reply, messages, prompts = run_with_answers(client, code, ["from tokio"])
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [p["prompt"] for p in prompts] == ["async> "]
    assert "async got [from tokio]" in stream_text(messages)


def test_a_password_read_hides_the_typing(kc):
    _, client = kc
    code = """let token = rustmeter::read_password("token: ").unwrap();
println!("{} characters", token.len());"""
    reply, messages, prompts = run_with_answers(client, code, ["s3cret"])
    assert reply["content"]["status"] == "ok", reply["content"]
    assert prompts == [{"prompt": "token: ", "password": True}]
    assert "6 characters" in stream_text(messages)


def test_without_stdin_the_read_gets_end_of_input_and_the_cell_an_error(kc):
    _, client = kc
    run_cell(client, "let before = 41;")
    reply, messages = run_cell(client, READ_LINE, timeout=120, allow_stdin=False)
    # End of input, as a program run with `< /dev/null` reads: an empty string.
    assert "got []" in stream_text(messages), messages
    content = reply["content"]
    assert content["status"] == "error", content
    assert content["ename"] == "stdin unavailable", content
    assert "allow_stdin" in content["evalue"] and "earlier cells are kept" in content["evalue"]
    # Its code ran for well under 2 s: the read was refused, not left to a time limit.
    assert reply["metadata"]["rustmeter"]["run_ms"] < 2000, reply["metadata"]["rustmeter"]
    reply, messages = run_cell(client, "before + 1")
    assert reply["content"]["status"] == "ok"
    assert "42" in str([m["content"] for m in messages if m["msg_type"] == "execute_result"])


def test_interrupt_while_the_input_box_is_open_keeps_variables(kc):
    km, client = kc
    run_cell(client, "let kept = 7;")
    # A loop over lines: the interrupt gives the read end of input, so the loop ends by
    # itself (an empty line would loop until the process is killed, losing `kept`).
    code = """use std::io::BufRead;
let mut count = 0;
for _line in std::io::stdin().lock().lines() { count += 1; }
println!("{count} lines");"""
    msg_id = client.execute(code, allow_stdin=True)
    request = client.get_stdin_msg(timeout=120)
    assert request["msg_type"] == "input_request"
    km.interrupt_kernel()
    reply = shell_reply(client, msg_id, timeout=60)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "interrupted", reply["content"]
    reply, messages = run_cell(client, "kept * 6")
    assert reply["content"]["status"] == "ok"
    assert "42" in str([m["content"] for m in messages if m["msg_type"] == "execute_result"])


def test_nbclient_gets_the_error_within_seconds(rustmeter_installed, kernel_name):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("let kept = 5;"), nbformat.v4.new_code_cell(READ_LINE),
                nbformat.v4.new_code_cell("kept")]
    replies = {}
    client = NotebookClient(
        nb, kernel_name=kernel_name, allow_errors=True, timeout=600,
        startup_timeout=STARTUP_TIMEOUT,
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.update(
            {cell_index: execute_reply}),
    )
    client.execute()
    errors = [o for o in nb.cells[1].outputs if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "stdin unavailable", nb.cells[1].outputs
    assert "does not take input" in errors[0]["evalue"]
    # The reading cell's code was stopped at once, not left to a time limit.
    assert replies[1]["metadata"]["rustmeter"]["run_ms"] < 2000, replies[1]["metadata"]
    results = [o for o in nb.cells[2].outputs if o["output_type"] == "execute_result"]
    assert results and results[0]["data"]["text/plain"] == "5", nb.cells[2].outputs
