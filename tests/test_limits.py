"""Memory and thread caps on a shared machine.

Two real kernels of one non-root user, each with RUSTMETER_MEMORY_LIMIT=500M and
RUSTMETER_THREAD_LIMIT=1000, in cgroups an administrator delegated to that user. Kernel 1
allocates 2 GB, then starts 5,000 threads: each cell fails with a message naming the cap
and its setting, the next cell works, and while each bomb runs kernel 1 answers on its
control and shell channels and kernel 2 answers a cell, keeping its variables.

As root the test makes the user (useradd, removed after) and the delegation; as another
user it runs the kernels as itself when RUSTMETER_CGROUP_PARENT names a delegated cgroup,
and skips otherwise.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

import system_users
from kernel_helpers import kernel_binary, wait_until_answering

USER = "rmlimits"
MEMORY = "500M"
THREADS = "1000"
# The first cell of a new user's kernel compiles evcxr's runtime; later cells are quick.
FIRST_CELL_TIMEOUT = 180
CELL_TIMEOUT = 60
# How long kernel 1's control/shell and kernel 2 may take to answer during a bomb: far
# above a healthy answer (milliseconds; a cell ~1 s) on a loaded 2-core machine, far
# below "stuck".
PROMPT = 20.0
# The bombs wait this long after announcing themselves, so probes provably overlap them.
BOMB_DELAY_MS = 2500

MEMORY_BOMB = f"""
println!("memory bomb starting");
std::thread::sleep(std::time::Duration::from_millis({BOMB_DELAY_MS}));
let big = vec![1u8; 2 << 30];
println!("allocated {{}}", big.len());
"""

THREAD_BOMB = f"""
println!("thread bomb starting");
std::thread::sleep(std::time::Duration::from_millis({BOMB_DELAY_MS}));
let handles: Vec<_> = (0..5000)
    .map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(3))))
    .collect();
for h in handles {{ h.join().unwrap(); }}
println!("started 5000 threads");
"""


def reachable_by_others(path: str) -> str | None:
    """Why another user cannot run `path`, or None."""
    p = Path(path).resolve()
    if not p.is_file():
        return f"kernel binary {p} not built (cargo build --release)"
    for d in [*reversed(p.parents)]:
        if not os.stat(d).st_mode & 0o001:
            return f"{d} is not searchable by other users (chmod o+x), so they cannot run {p}"
    if not os.stat(p).st_mode & 0o001:
        return f"{p} is not executable by other users"
    return None


class Kernel:
    """One kernel process and its client, with shell replies kept by request id."""

    def __init__(self, process, client):
        self.process = process
        self.client = client
        self.replies: dict[str, dict[str, Any]] = {}
        self.iopub: list[dict[str, Any]] = []

    def shell_reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while msg_id not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no shell reply to {msg_id} within {timeout}s")
            try:
                msg = self.client.get_shell_msg(timeout=min(left, 0.5))
            except Empty:
                continue
            self.replies[msg["parent_header"].get("msg_id", "")] = msg
        return self.replies.pop(msg_id)

    def has_reply(self, msg_id: str) -> bool:
        while True:
            try:
                msg = self.client.get_shell_msg(timeout=0.01)
            except Empty:
                return msg_id in self.replies
            self.replies[msg["parent_header"].get("msg_id", "")] = msg

    def outputs(self, msg_id: str, timeout: float) -> list[dict[str, Any]]:
        """iopub messages of one request up to its idle status (others are dropped)."""
        deadline = time.monotonic() + timeout
        mine = [m for m in self.iopub if m["parent_header"].get("msg_id") == msg_id]
        while not any(is_idle(m) for m in mine):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no idle status for {msg_id} within {timeout}s")
            try:
                msg = self.client.get_iopub_msg(timeout=min(left, 0.5))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                mine.append(msg)
        return mine

    def wait_for_stream(self, msg_id: str, text: str, timeout: float) -> None:
        """Reads iopub until the request prints `text`, keeping what it read."""
        deadline = time.monotonic() + timeout
        while True:
            if any(
                m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "stream"
                and text in m["content"]["text"]
                for m in self.iopub
            ):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r} not printed within {timeout}s")
            try:
                self.iopub.append(self.client.get_iopub_msg(timeout=min(left, 0.5)))
            except Empty:
                continue

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> tuple[dict, list[dict]]:
        msg_id = self.client.execute(code)
        reply = self.shell_reply(msg_id, timeout)
        return reply, self.outputs(msg_id, timeout)

    def kernel_info(self, channel: str, timeout: float = PROMPT) -> tuple[dict, float]:
        """kernel_info over `channel` ("shell" or "control"); (reply, seconds)."""
        started = time.monotonic()
        request = self.client.session.msg("kernel_info_request")
        if channel == "shell":
            self.client.shell_channel.send(request)
            reply = self.shell_reply(request["header"]["msg_id"], timeout)
        else:
            self.client.control_channel.send(request)
            deadline = started + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no control reply within {timeout}s")
                reply = self.client.control_channel.get_msg(timeout=left)
                if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                    break
        return reply, time.monotonic() - started

    def stop(self) -> None:
        try:
            self.client.shutdown()
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            self.client.stop_channels()


def is_idle(msg: dict) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def value_of(outputs: list[dict]) -> str | None:
    for m in outputs:
        if m["msg_type"] == "execute_result":
            return m["content"]["data"].get("text/plain")
    return None


def error_of(outputs: list[dict]) -> dict | None:
    return next((m["content"] for m in outputs if m["msg_type"] == "error"), None)


def stderr_of(outputs: list[dict]) -> str:
    return "".join(
        m["content"]["text"]
        for m in outputs
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )


@pytest.fixture(scope="module")
def learner():
    """(user, delegation or None, env with the caps) for kernels of one non-root user."""
    binary = kernel_binary()
    env = {"RUSTMETER_MEMORY_LIMIT": MEMORY, "RUSTMETER_THREAD_LIMIT": THREADS}
    if system_users.root_reason() is None:
        problem = reachable_by_others(binary)
        if problem:
            pytest.fail(problem)
        user = system_users.make_user(USER)
        delegation = system_users.delegate_cgroups(user, f"rustmeter-test-{USER}")
        env["RUSTMETER_CGROUP_PARENT"] = delegation.parent_setting
        try:
            yield user, delegation, env
        finally:
            # Each kernel removes its own group when it shuts down.
            leftovers = delegation.children()
            delegation.remove()
            system_users.remove_user(USER)
            assert not leftovers, f"kernels left their cgroups behind: {leftovers}"
    elif os.environ.get("RUSTMETER_CGROUP_PARENT"):
        me = pwd.getpwuid(os.geteuid())
        user = system_users.User(me.pw_name, me.pw_uid, me.pw_gid, Path(me.pw_dir))
        env["RUSTMETER_CGROUP_PARENT"] = os.environ["RUSTMETER_CGROUP_PARENT"]
        yield user, None, env
    else:
        pytest.skip(
            "needs root (to create a test user and delegate a cgroup to it) or, as another "
            "user, RUSTMETER_CGROUP_PARENT naming cgroup directories delegated to you"
        )


@contextlib.contextmanager
def kernels_of(user, env: dict[str, str], count: int):
    """`count` kernels started as `user` with `env`, stopped after."""
    # pytest's tmp_path is private to root; the kernels' user must read its files.
    workdir = Path(tempfile.mkdtemp(prefix="rustmeter-limits-"))
    workdir.chmod(0o755)
    kernels = []
    try:
        for _ in range(count):
            process, client = system_users.start_kernel_as(user, kernel_binary(), env, workdir)
            kernels.append(Kernel(process, client))
        for kernel in kernels:
            wait_until_answering(kernel.process, kernel.client, FIRST_CELL_TIMEOUT)
        yield kernels
    finally:
        for kernel in kernels:
            kernel.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def two_kernels(learner):
    """(kernel 1, kernel 2, delegated cgroup dirs or None) for one non-root user."""
    user, delegation, env = learner
    with kernels_of(user, env, 2) as (k1, k2):
        yield k1, k2, delegation


def bomb_with_probes(k1: Kernel, k2: Kernel, code: str, marker: str) -> list[dict]:
    """Runs `code` on kernel 1; from `marker` on until it ends, probes both kernels.

    Returns the bomb cell's outputs. Asserts that kernel 1 answered on shell while the
    cell still ran (its kernel_info reply came before the cell's execute_reply) and on
    control, and that kernel 2 ran a cell, each within PROMPT seconds.
    """
    bomb = k1.client.execute(code)
    k1.wait_for_stream(bomb, marker, FIRST_CELL_TIMEOUT)
    k2_cell = k2.client.execute("k2_value + 1")
    shell_answers_during = 0
    rounds = 0
    slowest = {"kernel 1 control": 0.0, "kernel 1 shell": 0.0, "kernel 2 shell": 0.0}
    while not k1.has_reply(bomb):
        rounds += 1
        for name, kernel, channel in [
            ("kernel 1 control", k1, "control"),
            ("kernel 1 shell", k1, "shell"),
            ("kernel 2 shell", k2, "shell"),
        ]:
            reply, seconds = kernel.kernel_info(channel)
            assert reply["content"]["status"] == "ok", reply["content"]
            assert seconds < PROMPT, f"{name} took {seconds:.1f}s during the bomb"
            slowest[name] = max(slowest[name], seconds)
            if name == "kernel 1 shell" and bomb not in k1.replies:
                shell_answers_during += 1
        if rounds > 2000:
            raise TimeoutError("the bomb cell never finished")
        time.sleep(0.1)
    assert shell_answers_during >= 1, "kernel 1's shell did not answer while its cell ran"
    # Figures for the log (pytest -s): how long the slowest answer took during the bomb.
    print(
        f"{marker}: {rounds} probe rounds; slowest "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in slowest.items())
    )
    k2_reply = k2.shell_reply(k2_cell, PROMPT)
    assert k2_reply["content"]["status"] == "ok", k2_reply["content"]
    assert value_of(k2.outputs(k2_cell, PROMPT)) == "2", "kernel 2 lost its variable"
    k1.shell_reply(bomb, CELL_TIMEOUT)
    return k1.outputs(bomb, CELL_TIMEOUT)


def test_caps_end_only_the_cell_and_name_the_limit(two_kernels):
    k1, k2, delegation = two_kernels
    reply, out = k1.run(":limits", FIRST_CELL_TIMEOUT)
    limits_text = value_of(out) or ""
    assert "NOT enforced" not in limits_text + stderr_of(out), limits_text + stderr_of(out)
    assert f"RUSTMETER_MEMORY_LIMIT={MEMORY}" in limits_text, limits_text
    assert f"RUSTMETER_THREAD_LIMIT={THREADS}" in limits_text, limits_text
    if delegation is not None:
        # Each kernel made its own group inside the delegated directories.
        assert len(delegation.children()) == 2 * len(delegation.dirs), delegation.children()
    reply, out = k1.run("let kept = 41; kept + 1", FIRST_CELL_TIMEOUT)
    assert value_of(out) == "42", out
    reply, out = k2.run("let k2_value = 1; k2_value", FIRST_CELL_TIMEOUT)
    assert value_of(out) == "1", out

    out = bomb_with_probes(k1, k2, MEMORY_BOMB, "memory bomb starting")
    error = error_of(out)
    assert error is not None, out
    assert "allocated" not in "".join(m["content"].get("text", "") for m in out)
    assert f"RUSTMETER_MEMORY_LIMIT={MEMORY}" in error["evalue"], error
    assert "memory limit" in error["evalue"], error
    # The process was replaced: what it held is named as lost.
    assert "kept" in error["evalue"], error

    reply, out = k1.run("let after = 7; after * 6")
    assert reply["content"]["status"] == "ok", error_of(out)
    assert value_of(out) == "42"

    out = bomb_with_probes(k1, k2, THREAD_BOMB, "thread bomb starting")
    error = error_of(out)
    assert error is not None, out
    assert f"thread limit of {THREADS} threads" in error["evalue"], error
    assert f"RUSTMETER_THREAD_LIMIT={THREADS}" in error["evalue"], error

    reply, out = k1.run("after + 1")
    assert reply["content"]["status"] == "ok", error_of(out)
    assert value_of(out) == "8", "the thread bomb should not have restarted the process"


def test_caps_that_cannot_be_enforced_are_said_once_and_the_kernel_works(learner):
    """The same caps without a delegated cgroup: a non-root user cannot make one."""
    user, delegation, env = learner
    if delegation is None:
        pytest.skip("needs root to run a kernel as a user without a delegated cgroup")
    env = {k: v for k, v in env.items() if k != "RUSTMETER_CGROUP_PARENT"}
    env["RUSTMETER_THREAD_LIMIT"] = "a thousand"
    with kernels_of(user, env, 1) as (kernel,):
        reply, out = kernel.run("1 + 1", FIRST_CELL_TIMEOUT)
        assert reply["content"]["status"] == "ok", error_of(out)
        assert value_of(out) == "2"
        warning = stderr_of(out)
        assert f"RUSTMETER_MEMORY_LIMIT={MEMORY} is set but NOT enforced" in warning, warning
        assert "permission denied" in warning, warning
        assert "RUSTMETER_CGROUP_PARENT" in warning and "chown" in warning, warning
        assert 'RUSTMETER_THREAD_LIMIT="a thousand" is not a whole number' in warning, warning
        reply, out = kernel.run("2 + 2")
        assert value_of(out) == "4"
        assert "NOT enforced" not in stderr_of(out), "said once, not on every cell"
        reply, out = kernel.run(":limits")
        assert "NOT enforced" in (value_of(out) or ""), out
