"""Helpers shared by the rustmeter tests (imported by conftest.py and the test modules).

Nothing here starts a kernel by itself: conftest.py's fixtures do.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty
from typing import Any

KERNEL_NAME = "rustmeter"
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# The first cell a kernel runs compiles evcxr's runtime, and cells that pull crates
# (`:dep`, async/tokio) build them: minutes on a 2-core machine, not seconds.
CELL_TIMEOUT = 120
STARTUP_TIMEOUT = 120


def kernel_unavailable_reason(kernel_name: str = KERNEL_NAME) -> str | None:
    """Why the kernel can't be started here, or None when it can.

    Checks that Jupyter finds the kernelspec and that its argv[0] is an executable file.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError as e:  # pragma: no cover - the venv always has it
        return f"jupyter_client is not installed ({e}); run ./install.sh"
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return f"no Jupyter kernelspec named {kernel_name!r}; run ./install.sh"
    binary = spec.argv[0] if spec.argv else ""
    resolved = binary if os.path.isabs(binary) else shutil.which(binary) or binary
    if not (os.path.isfile(resolved) and os.access(resolved, os.X_OK)):
        return (
            f"kernelspec {kernel_name!r} points at {binary!r}, which is not an executable "
            f"file; build it with ./install.sh (or cargo build --release)"
        )
    return None


def run_cell(kc: Any, code: str, timeout: float = CELL_TIMEOUT, **execute_kwargs: Any):
    """Execute `code` and collect everything the kernel says about that request.

    Returns (reply, iopub_msgs): the shell `execute_reply`, and every iopub message whose
    parent is this request, in order, from the `busy` status up to and including the
    `idle` status. Raises TimeoutError when either doesn't arrive within `timeout` seconds.
    """
    msg_id = kc.execute(code, **execute_kwargs)
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {timeout}s to cell:\n{code}")
        return left

    iopub_msgs: list[dict[str, Any]] = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=min(remaining(), 1.0))
        except Empty:
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        iopub_msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break

    while True:
        try:
            reply = kc.get_shell_msg(timeout=min(remaining(), 1.0))
        except Empty:
            continue
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return reply, iopub_msgs


def shell_reply(kc: Any, msg_id: str, timeout: float = CELL_TIMEOUT) -> dict[str, Any]:
    """The shell reply to request `msg_id` (other replies are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no reply to request {msg_id} within {timeout}s")
        try:
            reply = kc.get_shell_msg(timeout=min(left, 1.0))
        except Empty:
            continue
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return reply


def outputs(iopub_msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output messages among `iopub_msgs` (no status, no execute_input)."""
    return [m for m in iopub_msgs if m["msg_type"] not in ("status", "execute_input")]


def stream_text(iopub_msgs: list[dict[str, Any]], name: str = "stdout") -> str:
    """All text the cell wrote to stream `name` ("stdout" or "stderr")."""
    return "".join(
        m["content"]["text"]
        for m in iopub_msgs
        if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


def result_data(iopub_msgs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The mime bundle of the cell's execute_result, or None."""
    for m in iopub_msgs:
        if m["msg_type"] == "execute_result":
            return m["content"]["data"]
    return None


def describe(iopub_msgs: list[dict[str, Any]]) -> str:
    """A short text rendering of iopub messages, for assertion messages."""
    lines = []
    for m in iopub_msgs:
        c = m["content"]
        if m["msg_type"] == "stream":
            lines.append(f"stream[{c['name']}]: {c['text']!r}")
        elif m["msg_type"] in ("execute_result", "display_data"):
            lines.append(f"{m['msg_type']}: {c['data']!r}")
        elif m["msg_type"] == "error":
            lines.append(f"error: {c.get('ename')}: {c.get('evalue')}")
        elif m["msg_type"] == "status":
            lines.append(f"status: {c['execution_state']}")
        else:
            lines.append(m["msg_type"])
    return "\n".join(lines) or "(no iopub messages)"


@contextlib.contextmanager
def busy_loops(count: int):
    """`count` processes spinning on a core each for the duration of the block: a loaded
    machine, as a class or a build beside the kernel makes it."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield spinners
    finally:
        for process in spinners:
            process.kill()
        for process in spinners:
            process.wait(10)


def kernel_binary() -> str:
    """The kernel binary the tests and benchmarks run: $RUSTMETER_BIN, else the release build."""
    return os.environ.get("RUSTMETER_BIN") or str(ROOT / "target" / "release" / "rustmeter")


@contextlib.contextmanager
def launched_kernel(env: dict[str, str] | None = None, ready_timeout: float = 120, stderr=None):
    """A kernel process started from the binary with a fresh loopback connection file, as a
    Jupyter client launches one; yields (Popen, BlockingKernelClient) and kills it after.
    For benchmarks and tests that need the process itself rather than a KernelManager.
    The kernel's log goes to `stderr` when given, else to a file whose end a kernel that
    never answers is reported with."""
    import tempfile

    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    connection, _ = write_connection_file(ip="127.0.0.1")
    own_log = tempfile.TemporaryFile() if stderr is None else None
    kernel = subprocess.Popen(
        [kernel_binary(), "kernel", "--connection-file", connection], env=env, stderr=stderr or own_log)
    client = BlockingKernelClient(connection_file=connection)
    client.load_connection_file()
    client.start_channels()
    try:
        try:
            wait_until_answering(kernel, client, ready_timeout)
        except RuntimeError as e:
            if own_log is not None:
                own_log.seek(0)
                tail = own_log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{e}\nthe kernel's log:\n{tail}") from None
            raise
        yield kernel, client
    finally:
        if kernel.poll() is None:
            client.shutdown()
            try:
                kernel.wait(timeout=5)
            except subprocess.TimeoutExpired:
                kernel.kill()
                kernel.wait()
        client.stop_channels()
        os.unlink(connection)
        if own_log is not None:
            own_log.close()


def wait_until_answering(kernel: subprocess.Popen, client: Any, timeout: float) -> None:
    """Until the kernel answers kernel_info on shell and publishes on iopub (so this client's
    subscription is in place), judging it dead by its process, as a KernelManager does.
    jupyter_client's own wait judges a client without a manager by the heartbeat, and calls
    a kernel dead when its first ping goes unanswered for 1 s: a kernel starting on a
    loaded machine is not dead."""
    deadline = time.monotonic() + timeout
    while True:
        if kernel.poll() is not None:
            raise RuntimeError(f"the kernel exited (code {kernel.returncode}) before answering kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the kernel did not answer kernel_info in {timeout:.0f} s")
        client.kernel_info()
        try:
            reply = client.get_shell_msg(timeout=1)
        except Empty:
            continue
        if reply["msg_type"] != "kernel_info_reply":
            continue
        try:
            client.get_iopub_msg(timeout=0.2)
        except Empty:
            continue
        break
    # What the kernel published while the subscription formed, and its answers to the
    # earlier kernel_info requests, are not this caller's: a caller that reads the next
    # shell reply must get the answer to its own request.
    for get in (client.get_iopub_msg, client.get_shell_msg):
        while True:
            try:
                get(timeout=0.2)
            except Empty:
                break


def pid_alive(pid: int) -> bool:
    """The process runs and is not a zombie (killed, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
