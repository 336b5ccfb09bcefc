"""Kernels end with the process that launched them.

A client, a Jupyter server or a script that starts a kernel and is then killed (an
out-of-memory kill, a crash, a `timeout`) cannot shut its kernel down. The kernel watches
its launcher (`JPY_PARENT_PID`, else its parent) and shuts down by itself: the user-code
process, what cells started (the tutorials' demo server), its cgroups and its work folder
all go within 3 s. `RUSTMETER_WATCH_LAUNCHER=off` keeps a deliberately detached kernel
running; what such kernels leave is listed by `rustmeter doctor` and the processes their
cells started are stopped by the next kernel.
"""
from __future__ import annotations

import contextlib

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kernel_helpers import KERNEL_NAME, ROOT, STARTUP_TIMEOUT, pid_alive, run_cell, stream_text
from test_spare import spares  # noqa: F401  (the fixture: a private runtime folder with spares on)

GONE_WITHIN = 3.0  # s, from the launcher's death
PID_CELL = 'println!("PIDS {} {}", std::process::id(), std::os::unix::process::parent_id());'
DEMO_CELL = "let server = rustmeter::demo::start(std::time::Duration::from_millis(200));"

# A client process that starts a kernel, runs the given cells, prints what they printed as
# one JSON line, then waits to be killed.
CLIENT = """
import json, os, sys
from jupyter_client.manager import start_new_kernel
env = json.loads(sys.argv[1])
km, kc = start_new_kernel(kernel_name=sys.argv[2], startup_timeout=300, env=env, cwd=os.getcwd())
printed = []
for code in json.loads(sys.argv[3]):
    msg_id = kc.execute(code)
    text = ""
    while True:
        msg = kc.get_iopub_msg(timeout=300)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
        if msg["msg_type"] == "error":
            text += "ERROR " + msg["content"]["evalue"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    printed.append(text)
print(json.dumps({"kernel": km.provisioner.process.pid, "printed": printed}), flush=True)
import time
time.sleep(3600)
"""


def processes_with(*words: str) -> list[int]:
    """Pids whose command line has every one of `words` as an argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(w.encode() in argv for w in words):
            found.append(int(entry.name))
    return found


def pids_printed(text: str) -> tuple[int, int]:
    """(user-code process, its parent) from PID_CELL's line."""
    line = next(l for l in text.splitlines() if l.startswith("PIDS "))
    child, parent = line.split()[1:]
    return int(child), int(parent)


def folder_listing(folder: Path, since: float) -> list[str]:
    """What a folder that should be gone holds, each with its change time after `since`."""
    found = []
    for path in sorted(folder.rglob("*"))[:40] if folder.exists() else []:
        with contextlib.suppress(OSError):
            found.append(f"{path.relative_to(folder)} {path.stat().st_mtime - since:+.2f} s")
    return found


def gone_within(seconds: float, checks: dict) -> list[str]:
    """Names of the checks still true after `seconds` (each check: is the thing still there?)."""
    deadline = time.monotonic() + seconds
    while True:
        left = [name for name, still_there in checks.items() if still_there()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def pids_cgroup_parent(tmp_name: str) -> Path | None:
    """A fresh pids cgroup directory this test may hand to kernels (root, cgroup v1 or v2)."""
    if os.geteuid() != 0:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[-1]
        mount = Path(fields[4])
        if (fstype == "cgroup" and "pids" in options.split(",")) or fstype == "cgroup2":
            own = next((l.split(":", 2)[2] for l in Path("/proc/self/cgroup").read_text().splitlines()
                        if (fstype == "cgroup2" and l.startswith("0::")) or ":pids:" in l), "/")
            root = fields[3]
            if root != "/" and own.startswith(root):
                own = own[len(root):] or "/"
            parent = mount / own.lstrip("/") / tmp_name
            try:
                parent.mkdir(exist_ok=True)
            except OSError:
                return None
            return parent
    return None


class Client:
    """The CLIENT script run as its own process."""

    def __init__(self, env: dict, cells: list[str], cwd: Path | None = None):
        # The kernel inherits the client's stderr: a file, which never fills up as a pipe would.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLIENT, json.dumps(env), KERNEL_NAME, json.dumps(cells)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True, cwd=cwd,
        )
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            self.log.seek(0)
            raise AssertionError(f"the client failed: {self.log.read()[-3000:]}")
        report = json.loads(line)
        self.kernel: int = report["kernel"]
        self.printed: list[str] = report["printed"]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture()
def kernel_env(rustmeter_installed, tmp_path):
    runtime = tmp_path / "runtime"
    return {**os.environ, "RUSTMETER_RUNTIME_DIR": str(runtime), "RUSTMETER_SPARE": "0"}


def test_a_kernel_whose_client_is_killed_exits_with_everything_it_started(kernel_env, tmp_path):
    cgroups = pids_cgroup_parent(f"rustmeter-launch-test-{os.getpid()}")
    env = dict(kernel_env)
    if cgroups:
        env.update(RUSTMETER_THREAD_LIMIT="5000", RUSTMETER_CGROUP_PARENT=str(cgroups))
    try:
        client = Client(env, [DEMO_CELL, PID_CELL])
        assert "ERROR" not in "".join(client.printed), client.printed
        child, parent = pids_printed(client.printed[1])
        assert parent == client.kernel, "the user-code process is not the kernel's child"
        demo = processes_with("demo-server", "--owner-pid", str(client.kernel))
        assert demo, "no demo server runs for the kernel"
        workdir = Path(env["RUSTMETER_RUNTIME_DIR"]) / f"kernel-{client.kernel}"
        assert workdir.is_dir(), f"no work folder at {workdir}"
        if cgroups:
            assert any(cgroups.iterdir()), f"the kernel made no cgroup under {cgroups}"

        client.kill()
        left = gone_within(GONE_WITHIN, {
            "kernel": lambda: pid_alive(client.kernel),
            "user-code process": lambda: pid_alive(child),
            "demo server": lambda: any(pid_alive(p) for p in demo),
            "work folder": workdir.exists,
            "cgroups": lambda: bool(cgroups and [d for d in cgroups.iterdir() if d.is_dir()]),
        })
        assert not left, f"still there {GONE_WITHIN} s after the client was killed: {left}"
    finally:
        if cgroups:
            for d in cgroups.iterdir():
                if d.is_dir():
                    d.rmdir()
            cgroups.rmdir()


def test_a_kernel_ends_when_jupyterlab_is_killed_while_a_cell_runs(kernel_env, monkeypatch):
    from browser_helpers import start_server
    from jupyter_client import BlockingKernelClient
    from test_spare import open_notebook_session

    for name in ("RUSTMETER_RUNTIME_DIR", "RUSTMETER_SPARE"):
        monkeypatch.setenv(name, kernel_env[name])
    server = start_server("lab")
    try:
        kernel_id = open_notebook_session(server)["kernel"]["id"]
        connection = Path(server.env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json"
        kc = BlockingKernelClient(connection_file=str(connection))
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        _, iopub = run_cell(kc, PID_CELL)
        child, kernel = pids_printed(stream_text(iopub))
        sleeping = kc.execute("std::thread::sleep(std::time::Duration::from_secs(600));")
        deadline = time.monotonic() + 120
        while True:  # the cell is taken (busy), then compiled and running within a second
            msg = kc.get_iopub_msg(timeout=120)
            if (msg["parent_header"].get("msg_id") == sleeping and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "busy"):
                break
            assert time.monotonic() < deadline, "the sleeping cell never started"
        time.sleep(2.0)
        kc.stop_channels()

        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        work = Path(kernel_env["RUSTMETER_RUNTIME_DIR"]) / f"kernel-{kernel}"
        killed = time.time()
        left = gone_within(GONE_WITHIN, {
            "kernel": lambda: pid_alive(kernel),
            "user-code process": lambda: pid_alive(child),
            "work folder": work.exists,
        })
        assert not left, (f"still there {GONE_WITHIN} s after JupyterLab was killed: {left}; in the work folder "
                          f"(seconds after the kill they were last changed): {folder_listing(work, killed)}")
    finally:
        server.stop()


def test_a_spare_served_launch_ends_when_its_client_is_killed(spares):
    spare = spares.seed()
    client = Client(spares.env, [PID_CELL], cwd=spares.folder)
    try:
        proxy = client.kernel
        assert spares.served_by(proxy) == spare, "the launch was not served by the warm spare"
        child, parent = pids_printed(client.printed[0])
        assert parent == spare, "the cell did not run in the spare's user-code process"
        client.kill()
        left = gone_within(GONE_WITHIN, {
            "proxy": lambda: pid_alive(proxy),
            "spare": lambda: pid_alive(spare),
            "user-code process": lambda: pid_alive(child),
            "spare's work folder": (spares.base / f"kernel-{spare}").exists,
        })
        assert not left, f"still there {GONE_WITHIN} s after the client was killed: {left}"
    finally:
        client.process.kill()


def test_a_detached_kernel_keeps_running_and_what_it_leaves_is_found(kernel_env, tmp_path):
    env = {**kernel_env, "RUSTMETER_WATCH_LAUNCHER": "off"}
    marker = f"{600 + os.getpid() % 1000}.5"  # a sleep no other test runs
    started = f'std::process::Command::new("setsid").args(["sleep", "{marker}"]).spawn().map(|_| ()).unwrap();'
    client = Client(env, [PID_CELL, started])
    kernel = client.kernel
    try:
        assert "ERROR" not in "".join(client.printed), client.printed
        child, _ = pids_printed(client.printed[0])
        client.kill()
        time.sleep(GONE_WITHIN + 1)
        assert pid_alive(kernel) and pid_alive(child), "the kernel stopped although RUSTMETER_WATCH_LAUNCHER=off"

        binary = os.environ.get("RUSTMETER_BIN") or str(ROOT / "target" / "release" / "rustmeter")
        doctor = subprocess.run([binary, "doctor"], env=env, capture_output=True, text=True, timeout=120).stdout
        assert f"kernel pid {kernel} (its launcher" in doctor, doctor

        # Killed with no chance to clean up: its cell's process lives on, until the next kernel.
        os.kill(kernel, signal.SIGKILL)
        sleeper = processes_with("sleep", marker)
        assert sleeper, "the cell's setsid sleep is not running"
        doctor = subprocess.run([binary, "doctor"], env=env, capture_output=True, text=True, timeout=120).stdout
        assert f"pid {sleeper[0]} started by a cell of kernel {kernel}" in doctor, doctor

        from jupyter_client.manager import start_new_kernel

        km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=STARTUP_TIMEOUT, env=kernel_env)
        try:
            left = gone_within(GONE_WITHIN, {"cell's process": lambda: any(pid_alive(p) for p in sleeper)})
            assert not left, "the next kernel did not stop the process a dead kernel's cell left"
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    finally:
        client.process.kill()
        for pid in [kernel, *processes_with("sleep", marker)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
