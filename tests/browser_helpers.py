"""Starting a real Jupyter server (JupyterLab or Notebook 7) for the browser test, and
finding the Chromium that Playwright drives.

Owns: the temporary root dir (a copy of notebooks/), the temporary kernelspec that points
at $RUSTMETER_BIN, the server process and its token. Must not write into the repository's
notebooks/ or touch the installed kernelspecs.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kernel_helpers import KERNEL_NAME, NOTEBOOKS, ROOT

CHROMIUM = os.environ.get("RUSTMETER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SERVER_START_TIMEOUT = 60


def chromium_unavailable_reason() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"Playwright for Python is not installed ({e}); run ./install.sh"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"Chromium not found at {CHROMIUM} (install.sh tries apt-get install chromium as "
            f"root; or set RUSTMETER_CHROMIUM to a Chromium binary)"
        )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernelspec_dir_for(binary: str, into: Path) -> Path:
    """A JUPYTER_PATH dir whose kernelspec `rustmeter` is the installed one (logos, env)
    with argv[0] replaced by `binary`, so the test runs the binary under test."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = Path(KernelSpecManager().get_kernel_spec(KERNEL_NAME).resource_dir)
    dest = into / "kernels" / KERNEL_NAME
    shutil.copytree(installed, dest)
    spec = json.loads((dest / "kernel.json").read_text())
    spec["argv"][0] = binary
    (dest / "kernel.json").write_text(json.dumps(spec, indent=2))
    return into


# JupyterLab settings for a quiet, reproducible session: no news toast, no
# "check for updates" toast, light theme to start with, and every cell in the DOM (the
# default windowing renders only the cells in view, so off-screen footers would not exist).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {
        "theme": "JupyterLab Light",
    },
}


@dataclass
class JupyterServer:
    """A running `jupyter lab` or `jupyter notebook` on 127.0.0.1 with a token."""

    app: str
    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    scratch: Path
    env: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str) -> dict:
        request = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def start_server(app: str) -> JupyterServer:
    """Starts `python -m jupyter APP` ("lab" or "notebook") on a free port, its root dir a
    temporary copy of notebooks/, and waits until its API answers."""
    scratch = Path(tempfile.mkdtemp(prefix=f"rustmeter-{app}-"))
    root = scratch / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = scratch / "settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ)
    # Own config/data/runtime dirs: no user extensions, workspaces or notary DB leak in.
    env["JUPYTER_CONFIG_DIR"] = str(scratch / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
    env["JUPYTER_DATA_DIR"] = str(scratch / "data")
    binary = os.environ.get("RUSTMETER_BIN")
    if binary:
        env["JUPYTER_PATH"] = str(kernelspec_dir_for(os.path.abspath(binary), scratch / "jupyter"))
    port = free_port()
    token = secrets.token_hex(16)
    log_path = scratch / f"{app}.log"
    argv = [
        sys.executable, "-m", "jupyter", app,
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabServerApp.user_settings_dir={settings}",
        f"--LabServerApp.workspaces_dir={scratch / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = JupyterServer(app, root, port, token, process, log_path, scratch, env)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"jupyter {app} exited ({process.returncode}):\n{server.log_tail()}")
        try:
            server.api("status")
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise TimeoutError(
                    f"jupyter {app} did not answer within {SERVER_START_TIMEOUT}s:\n{server.log_tail()}"
                ) from None
            time.sleep(0.3)
