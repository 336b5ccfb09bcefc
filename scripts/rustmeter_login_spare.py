"""Jupyter server extension of a rustmeter class: one warm kernel per learner from login.

install.sh --class copies this module to DIR/python and enables it with
DIR/etc/jupyter/jupyter_server_config.d/rustmeter-login-spare.json; the class hub puts both
folders on the learners' servers' PYTHONPATH and JUPYTER_CONFIG_PATH.

- When the learner's Jupyter server starts (JupyterHub spawns it at login) it runs
  `rustmeter spares start` with the environment the server gives its rustmeter kernels, so
  the learner's first notebook is served by a kernel that is already warm.
- The class kernelspec sets RUSTMETER_SPARE_START=login: kernel launches start no spares.
  Every CHECK_SECONDS this extension starts the next spare only if the learner has no
  rustmeter kernel running (their kernels ended), so a learner never holds two idle kernels.
- When the server stops (logout, idle culling) the learner's spares stop with it.

Why a server extension rather than the hub's spawn hook: it runs as the learner, inside
their server, with exactly the kernelspec and environment their kernels get (a spare only
serves a launch with the same environment), and it lives and ends with that server.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import threading
from string import Template

KERNEL_NAME = "rustmeter"
CHECK_SECONDS = 30


def _jupyter_server_extension_points():
    return [{"module": "rustmeter_login_spare"}]


class LoginSpare:
    """Starts and stops the learner's warm spare through the kernel binary."""

    def __init__(self, serverapp, spec):
        self.app = serverapp
        self.binary = spec.argv[0]
        # What jupyter_client gives a kernel: the server's environment plus the
        # kernelspec's, with `${VAR}` references filled in from the former.
        base = dict(os.environ)
        self.env = {**base, **{k: Template(v).safe_substitute(base) for k, v in spec.env.items()}}

    def run(self, action: str) -> None:
        try:
            done = subprocess.run([self.binary, "spares", action], env=self.env, cwd=self.app.root_dir,
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.app.log.warning("rustmeter: `spares %s` failed: %s", action, e)
            return
        if done.returncode != 0:
            self.app.log.warning("rustmeter: `spares %s` failed: %s", action, done.stderr.strip()[-500:])

    def kernels_running(self) -> bool:
        manager = self.app.kernel_manager
        for kernel_id in list(manager.list_kernel_ids()):
            try:
                if manager.get_kernel(kernel_id).kernel_name == KERNEL_NAME:
                    return True
            except KeyError:  # ended meanwhile
                continue
        return False

    def start_unless_in_use(self) -> None:
        """Off the server's event loop: the command takes a few milliseconds, or longer on
        a machine busy with a class."""
        if not self.kernels_running():
            asyncio.get_running_loop().run_in_executor(None, self.run, "start")


def _load_jupyter_server_extension(serverapp):
    from jupyter_client.kernelspec import NoSuchKernel
    from tornado.ioloop import PeriodicCallback

    try:
        spec = serverapp.kernel_spec_manager.get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        serverapp.log.warning("rustmeter: no %r kernelspec: no warm kernel at login", KERNEL_NAME)
        return
    spare = LoginSpare(serverapp, spec)
    serverapp.rustmeter_login_spare = spare
    threading.Thread(target=spare.run, args=("start",), daemon=True).start()
    checker = PeriodicCallback(spare.start_unless_in_use, CHECK_SECONDS * 1000)
    checker.start()
    spare.checker = checker
    # jupyter_server calls no unload hook for a plain extension module: the spare stops
    # when the server's process exits (logout, culling: a SIGTERM it handles).
    atexit.register(spare.run, "stop")
    serverapp.log.info("rustmeter: a warm kernel is starting for this learner")
