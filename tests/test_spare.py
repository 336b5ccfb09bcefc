"""Warm spare kernels through jupyter_client: a launch starts a spare for the next launch;
that launch is served by the spare (already warm: evcxr, rust-analyzer and tokio ready)
while the launched process stays as its proxy; a launch from another folder or with
another environment is not served; the spare and its proxy go away together however the
kernel ends (shutdown request, SIGKILL of the launched process, SIGTERM).

Every kernel here has RUSTMETER_SPARE=1 and a private RUSTMETER_RUNTIME_DIR, so these
spares never serve (or are served by) anything outside this module.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kernel_helpers import (
    KERNEL_NAME,
    STARTUP_TIMEOUT,
    describe,
    pid_alive,
    result_data,
    run_cell,
    stream_text,
)

SPARE_READY_TIMEOUT = 300  # s: a spare waits 4 s, then for a free core, then warms (~15 s)
CANONICAL_DEP = ':dep tokio = { version = "1", features = ["full"] }'


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Spares:
    """The private runtime folder and what is in its spares/ folder."""

    def __init__(self, base: Path, folder: Path):
        self.base = base
        self.folder = folder
        self.env = {**os.environ, "RUSTMETER_SPARE": "1", "RUSTMETER_RUNTIME_DIR": str(base)}

    @property
    def dir(self) -> Path:
        return self.base / "spares"

    def ready(self) -> list[int]:
        return [int(p.stem.rsplit("-", 1)[1]) for p in self.dir.glob("*.sock")]

    def announced(self) -> list[int]:
        return [int(p.stem.rsplit("-", 1)[1]) for p in self.dir.glob("*.spare")]

    def wait_ready(self) -> int:
        try:
            return wait_until(self.ready, SPARE_READY_TIMEOUT, f"a warm spare in {self.dir}")[0]
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """What the spares folder holds, the spares' logs and the busiest processes."""
        import subprocess

        files = sorted(p.name for p in self.dir.glob("*")) if self.dir.exists() else []
        logs = "\n".join(f"{p.name}: {p.read_text(errors='replace')[-2000:]!r}" for p in self.dir.glob("*.log"))
        top = subprocess.run(["ps", "-eo", "pid,ppid,stat,pcpu,etime,args", "--sort=-pcpu"],
                             capture_output=True, text=True).stdout.splitlines()[:12]
        return f"files: {files}\nlogs:\n{logs}\nbusiest processes:\n" + "\n".join(top)

    def seed(self) -> int:
        """Runs one kernel to its first idle moment (when it starts the next spare) and
        shuts it down; returns the pid of the spare once that is ready."""
        km, kc = self.launch()
        run_cell(kc, "1")
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        return self.wait_ready()

    def served_by(self, launcher: int) -> int | None:
        try:
            return int((self.dir / f"proxy-{launcher}").read_text())
        except (OSError, ValueError):
            return None

    def launch(self, env: dict[str, str] | None = None, cwd: Path | None = None):
        from jupyter_client.manager import KernelManager

        km = KernelManager(kernel_name=KERNEL_NAME)
        km.start_kernel(env=env or self.env, cwd=str(cwd or self.folder))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        return km, kc

    def stop_all(self):
        binary = os.environ.get("RUSTMETER_BIN")
        if binary is None:
            from jupyter_client.kernelspec import KernelSpecManager

            binary = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv[0]
        subprocess.run([binary, "spares", "stop"], env=self.env, capture_output=True, timeout=30)
        wait_until(lambda: not [p for p in self.announced() if pid_alive(p)], 30, "spares to stop")


@pytest.fixture()
def spares(rustmeter_installed, tmp_path):
    base = tmp_path / "runtime"
    folder = tmp_path / "notebooks"
    folder.mkdir()
    s = Spares(base, folder)
    try:
        yield s
    finally:
        s.stop_all()


def value(iopub) -> str:
    data = result_data(iopub) or {}
    return str(data.get("text/plain", "")).strip()


def telemetry(reply) -> dict:
    return reply["metadata"].get("rustmeter") or {}


def test_a_second_launch_is_served_by_the_warm_spare_the_first_started(spares):
    km1, kc1 = spares.launch()
    try:
        assert spares.served_by(km1.provisioner.process.pid) is None, "no spare existed yet"
        reply, iopub = run_cell(kc1, "let a = 1;\na")
        assert value(iopub) == "1"
        spare = spares.wait_ready()
    finally:
        kc1.stop_channels()
        km1.shutdown_kernel(now=False)

    km2, kc2 = spares.launch()
    launcher = km2.provisioner.process.pid
    try:
        assert spares.served_by(launcher) == spare, "the launch was not handed to the ready spare"
        with open(f"/proc/{spare}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[1] == b"spare"
        # The warm-up cells left nothing a learner can see: no telemetry, no variables.
        reply, iopub = run_cell(kc2, "rustmeter::last().is_none()")
        assert value(iopub) == "true", iopub
        reply, iopub = run_cell(kc2, ":vars")
        assert "rustmeter_warm" not in str(iopub)
        reply, iopub = run_cell(kc2, "let x = 41;\nx + 1")
        assert value(iopub) == "42"
        assert (telemetry(reply).get("queue_ms") or 0) < 1000, telemetry(reply)
        # The canonical dependency line is already there: nothing to build.
        reply, iopub = run_cell(kc2, CANONICAL_DEP)
        assert "already shared" in stream_text(iopub), iopub
        reply, iopub = run_cell(kc2, "tokio::time::sleep(std::time::Duration::from_millis(5)).await;\nx")
        assert value(iopub) == "41"
        # Interrupts reach the spare (message mode, over control).
        msg_id = kc2.execute("tokio::time::sleep(std::time::Duration::from_secs(120)).await;")
        time.sleep(2)
        km2.interrupt_kernel()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = kc2.get_iopub_msg(timeout=20)
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status" \
                    and m["content"]["execution_state"] == "idle":
                break
        else:
            raise AssertionError("the interrupted cell did not end")
        reply, iopub = run_cell(kc2, "x * 2")
        assert value(iopub) == "82", "variables survive the interrupt"
        # This launch started the next spare.
        wait_until(lambda: [p for p in spares.announced() if p != spare], 30, "the next spare")
    finally:
        kc2.stop_channels()
        km2.shutdown_kernel(now=False)
    wait_until(lambda: not pid_alive(spare), 20, "the served spare to exit after shutdown")
    assert not pid_alive(launcher)
    assert not (spares.base / f"kernel-{spare}").exists(), "the spare's work folder was removed"


def test_jupyter_console_served_by_a_spare_shows_no_kernel_log(spares):
    """The spare writes its log to the launcher's stderr, still behind its own filter:
    cargo's lines stay out of the terminal and in `:last_build_log`."""
    pytest.importorskip("pexpect")
    from test_console import assert_quiet, run_console, split_build_log

    spares.env = {**spares.env, "TERM": "dumb"}
    spares.env.pop("RUSTMETER_LOG", None)
    spare = spares.seed()
    text = run_console(KERNEL_NAME, spares.env, [
        "std::os::unix::process::parent_id()",
        # A version no warm-up builds: cargo compiles it in this kernel.
        ':dep itoa = "=1.0.9"',
        ":last_build_log",
    ], cwd=str(spares.folder))
    assert f"Out[1]: {spare}" in text, f"not served by spare {spare}:\n{text}"
    shown, build_log = split_build_log(text, 3)
    assert_quiet(shown, "warm spare serving the launch of pid ")
    assert "Compiling itoa v1.0.9" in build_log, f"no cargo lines:\n{build_log}"


def test_a_launch_from_another_folder_is_served_in_that_folder(spares, tmp_path):
    spare = spares.seed()
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "data.txt").write_text("from the notebook's folder")
    km, kc = spares.launch(cwd=other)
    try:
        assert spares.served_by(km.provisioner.process.pid) == spare, "a launch from another folder was not served"
        # Cells, a relative path and the kernel's own folder are the launch's, as in a
        # kernel started there.
        reply, iopub = run_cell(kc, 'std::fs::read_to_string("data.txt").unwrap()')
        assert "from the notebook's folder" in value(iopub), describe(iopub)
        reply, iopub = run_cell(kc, "std::env::current_dir().unwrap().display().to_string()")
        assert value(iopub).strip('"') == str(other), describe(iopub)
        assert Path(os.readlink(f"/proc/{spare}/cwd")) == other
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_other_settings_are_not_served_and_replace_the_spare(spares):
    first = spares.seed()
    km, kc = spares.launch(env={**spares.env, "RUSTMETER_CELL_TIMEOUT": "1m"})
    try:
        assert spares.served_by(km.provisioner.process.pid) is None
        # At most one waiting spare per user: the unmatched one is replaced by one for
        # this launch's settings.
        wait_until(lambda: not pid_alive(first), 30, "the unmatched spare to stop")
        wait_until(lambda: [p for p in spares.announced() if pid_alive(p) and p != first], 30,
                   "a spare for the new settings")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_spares_start_at_login_serve_one_launch_and_launches_start_none(spares):
    """Class mode (RUSTMETER_SPARE_START=login): `rustmeter spares start`, as the learner's
    Jupyter server runs it at login, warms one kernel; the first launch takes it and no
    launch starts another, so a learner never holds two idle kernels."""
    from jupyter_client.kernelspec import KernelSpecManager

    spares.env["RUSTMETER_SPARE_START"] = "login"
    # As the login extension runs it: the kernelspec's program and environment.
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    binary, env = spec.argv[0], {**spares.env, **spec.env}
    started = subprocess.run([binary, "spares", "start"], env=env, cwd=spares.folder,
                             capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    spare = spares.wait_ready()
    km, kc = spares.launch()
    try:
        assert spares.served_by(km.provisioner.process.pid) == spare
        run_cell(kc, "1")
        time.sleep(8)  # longer than a spare's start delay: none may appear
        assert [p for p in spares.announced() if pid_alive(p)] == [], "a launch started a spare in login mode"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    again = subprocess.run([binary, "spares", "start"], env=env, cwd=spares.folder,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr
    assert spares.wait_ready() != spare, "after the kernel ended, `spares start` warms a new one"


def test_a_launch_before_the_login_spare_is_warm_stops_it(spares):
    """Login mode: a learner who opens a notebook before their warm kernel is ready gets a
    kernel of its own, and the spare stops instead of idling beside it."""
    from jupyter_client.kernelspec import KernelSpecManager

    spares.env["RUSTMETER_SPARE_START"] = "login"
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    env = {**spares.env, **spec.env}
    started = subprocess.run([spec.argv[0], "spares", "start"], env=env, cwd=spares.folder,
                             capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    warming = wait_until(lambda: [p for p in spares.announced() if pid_alive(p)], 30, "the login spare to start")
    assert not spares.ready(), "the spare must still be warming (it waits 4 s before it starts)"
    km, kc = spares.launch()
    try:
        assert spares.served_by(km.provisioner.process.pid) is None
        wait_until(lambda: not any(pid_alive(p) for p in warming), 30, "the warming login spare to stop")
        reply, iopub = run_cell(kc, "1 + 1")
        assert value(iopub) == "2"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_spare_ends_with_its_launcher(spares, how):
    spare = spares.seed()

    km, kc = spares.launch()
    launcher = km.provisioner.process.pid
    assert spares.served_by(launcher) == spare
    reply, iopub = run_cell(kc, "let y = 2;\ny")
    child = int(telemetry(reply).get("pid") or 0)
    kc.stop_channels()
    os.kill(launcher, getattr(signal, how))
    wait_until(lambda: not pid_alive(spare), 20, f"the spare to exit after {how} of its launcher")
    if child:
        wait_until(lambda: not pid_alive(child), 20, "the spare's user-code child to exit")
    km.shutdown_kernel(now=True)


def api_call(server, method: str, path: str, body: dict | None = None) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{server.base}/api/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        text = response.read()
        return json.loads(text) if text else {}


def open_notebook_session(server, notebook: str = "01-welcome.ipynb") -> dict:
    """Opens `notebook` with a rustmeter kernel through Jupyter's sessions API, as
    JupyterLab does; returns the session (its kernel's id is `["kernel"]["id"]`)."""
    return api_call(server, "POST", "sessions", {
        "path": notebook, "name": notebook, "type": "notebook",
        "kernel": {"name": KERNEL_NAME},
    })


def test_a_kernel_restart_in_jupyterlab_is_served_by_a_spare(spares, monkeypatch):
    """Under jupyter_server each launch gets its own JPY_* variables; the spare must still
    match, or a learner's restart would never be instant."""
    from browser_helpers import start_server

    monkeypatch.setenv("RUSTMETER_SPARE", "1")
    monkeypatch.setenv("RUSTMETER_RUNTIME_DIR", str(spares.base))
    server = start_server("lab")
    try:
        session = open_notebook_session(server)
        kernel = session["kernel"]["id"]
        spare = spares.wait_ready()
        api_call(server, "POST", f"kernels/{kernel}/restart")
        proxies = wait_until(lambda: [p for p in spares.dir.glob("proxy-*")
                                      if p.read_text().strip() == str(spare)], 30,
                             "the restarted kernel to be served by the spare")
        assert pid_alive(int(proxies[0].name.split("-")[1])), "the proxy (the launched process) runs"
        wait_until(lambda: api_call(server, "GET", f"kernels/{kernel}")["execution_state"] == "idle",
                   60, "the restarted kernel to be idle")
        api_call(server, "DELETE", f"sessions/{session['id']}")
        wait_until(lambda: not pid_alive(spare), 30, "the served spare to exit with its session")
    finally:
        server.stop()
