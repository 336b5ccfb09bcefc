"""Direct protocol checks on one shared rustmeter kernel (conftest.py's km_kc), with
timeouts fit for a compiling kernel. They complement the conformance suite with the
things a Rust REPL must get right: state across cells, compile errors, stdout/stderr.
"""
from __future__ import annotations

import pytest

from kernel_helpers import describe, outputs, result_data, run_cell, shell_reply, stream_text


def test_kernel_info(km_kc) -> None:
    _, kc = km_kc
    reply = kc.kernel_info(reply=True, timeout=30)
    content = reply["content"]
    assert content["status"] == "ok"
    assert content["protocol_version"].startswith("5.")
    assert content["language_info"]["name"] == "rust"
    assert content["language_info"]["file_extension"] == ".rs"


def test_execute_result_and_state(km_kc) -> None:
    _, kc = km_kc
    reply, msgs = run_cell(kc, "let answer = 40 + 2;")
    assert reply["content"]["status"] == "ok", describe(msgs)
    reply, msgs = run_cell(kc, "answer")
    assert reply["content"]["status"] == "ok", describe(msgs)
    data = result_data(msgs)
    assert data is not None, describe(msgs)
    assert data["text/plain"] == "42"


def test_execution_count_increments(km_kc) -> None:
    _, kc = km_kc
    first, _ = run_cell(kc, "let _a = 1;")
    second, _ = run_cell(kc, "let _b = 2;")
    assert second["content"]["execution_count"] == first["content"]["execution_count"] + 1


def test_stdout_and_stderr(km_kc) -> None:
    _, kc = km_kc
    reply, msgs = run_cell(kc, 'println!("to stdout"); eprintln!("to stderr");')
    assert reply["content"]["status"] == "ok", describe(msgs)
    assert "to stdout" in stream_text(msgs, "stdout"), describe(msgs)
    assert "to stderr" in stream_text(msgs, "stderr"), describe(msgs)


def test_compile_error_is_reported(km_kc) -> None:
    _, kc = km_kc
    reply, msgs = run_cell(kc, 'let s: i32 = "not a number";')
    assert reply["content"]["status"] == "error", describe(msgs)
    errors = [m for m in outputs(msgs) if m["msg_type"] == "error"]
    assert errors, describe(msgs)
    # The kernel stays usable, its earlier state intact, after an error.
    reply, msgs = run_cell(kc, "let base = 42;")
    assert reply["content"]["status"] == "ok", describe(msgs)
    reply, msgs = run_cell(kc, 'let t: u8 = "also not a number";')
    assert reply["content"]["status"] == "error", describe(msgs)
    reply, msgs = run_cell(kc, "base + 1")
    assert reply["content"]["status"] == "ok", describe(msgs)
    assert (result_data(msgs) or {}).get("text/plain") == "43", describe(msgs)


@pytest.mark.parametrize(
    "code, status",
    [("let x = 1;", "complete"), ("fn f() {", "incomplete"), ("let x = );", "invalid")],
)
def test_is_complete(km_kc, code: str, status: str) -> None:
    _, kc = km_kc
    reply = shell_reply(kc, kc.is_complete(code), timeout=60)
    assert reply["content"]["status"] == status
