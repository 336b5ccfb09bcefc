"""JupyterLab's kernel-usage panel for Rust notebooks: rustmeter answers ipykernel's
`usage_request` on the control channel, and jupyter-resource-usage's own kernel-usage
handler (the one the panel polls) gets the reply from a running rustmeter kernel.

Real kernels, real ZeroMQ: jupyter_client for the request itself, a real Jupyter server
with the installed jupyter-resource-usage extension for the handler.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from kernel_helpers import KERNEL_NAME, STARTUP_TIMEOUT, kernel_unavailable_reason

_skip = kernel_unavailable_reason()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

# ipykernel's reply fields (kernelbase.py `usage_request`), psutil's virtual_memory names.
FIELDS = {"hostname", "pid", "kernel_cpu", "kernel_memory", "cpu_count", "host_virtual_memory"}
MEMORY_FIELDS = {"total", "available", "percent", "used", "free"}


def usage(km, kc) -> dict:
    request = kc.session.msg("usage_request", {})
    kc.control_channel.send(request)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = kc.control_channel.get_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
            assert reply["header"]["msg_type"] == "usage_reply", reply
            return reply["content"]
    raise AssertionError("no usage_reply")


def test_usage_request_reports_the_kernels_cpu_and_memory_as_ipykernel_does():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=STARTUP_TIMEOUT)
    try:
        first = usage(km, kc)
        assert FIELDS <= set(first), first
        assert MEMORY_FIELDS <= set(first["host_virtual_memory"]), first
        assert first["kernel_memory"] > 10_000_000, "kernel and its user-code process"
        assert first["cpu_count"] >= 1
        # While a cell keeps one core busy, the next reply says so (CPU since the last).
        msg_id = kc.execute(
            "let t = std::time::Instant::now();\nlet mut x = 0u64;\n"
            "while t.elapsed() < std::time::Duration::from_secs(4) { x = x.wrapping_add(1); }\n"
            "std::hint::black_box(x);"
        )
        time.sleep(1.5)
        usage(km, kc)  # the window starts now, inside the busy run
        time.sleep(1.5)
        busy = usage(km, kc)
        assert busy["kernel_cpu"] >= 50, busy
        reply = kc.get_shell_msg(timeout=120)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_jupyter_resource_usage_kernel_handler_gets_the_reply():
    from browser_helpers import start_server

    server = start_server("lab")
    try:
        created = _request(server, "POST", "kernels", {"name": KERNEL_NAME})
        kernel_id = created["id"]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        content: dict = {}
        while time.monotonic() < deadline:
            answer = _request(server, "GET", f"metrics/v1/kernel_usage/get_usage/{kernel_id}")
            content = answer.get("content", {})
            # A reply in the kernel's first second measures it before evcxr started
            # (8 MB once): ask again until the start-up shows.
            if "kernel_cpu" in content and content.get("kernel_memory", 0) > 10_000_000:
                break
            time.sleep(2)
        assert FIELDS <= set(content), f"{content}\n{server.log_tail()}"
        assert content["kernel_memory"] > 10_000_000, content
        _request(server, "DELETE", f"kernels/{kernel_id}")
    finally:
        server.stop()


def _request(server, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{server.base}/api/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else {}
