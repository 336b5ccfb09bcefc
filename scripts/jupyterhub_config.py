"""JupyterHub configuration for a rustmeter class on one machine (scripts/class-hub.sh).

Read by `jupyterhub -f`; everything comes from the environment class-hub.sh sets:

    RUSTMETER_CLASS_DIR     the class install (install.sh --class DIR), e.g. /opt/rustmeter
    RUSTMETER_HUB_PORT      public port on 127.0.0.1 (the hub API and the proxy API use +1, +2)
    RUSTMETER_HUB_LEARNERS  comma-separated user names allowed to log in (system accounts)
    RUSTMETER_HUB_IP        address to listen on (default 127.0.0.1)

Learners are real system users: JupyterHub's default LocalProcessSpawner starts each
single-user server as that user (setuid), so a learner's kernels and files are theirs
only. The dummy authenticator accepts any password: fine on localhost for a test or a
demo; a real class uses PAMAuthenticator (the default) or an OAuth authenticator.
The admin token for scripts (creating learners' tokens, starting servers) is the
`class-admin` service's, kept in DIR/hub/admin-token (root-only).
"""
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

class_dir = Path(os.environ.get("RUSTMETER_CLASS_DIR", "/opt/rustmeter"))
hub_dir = class_dir / "hub"
port = int(os.environ.get("RUSTMETER_HUB_PORT", "8000"))
ip = os.environ.get("RUSTMETER_HUB_IP", "127.0.0.1")
learners = {n for n in os.environ.get("RUSTMETER_HUB_LEARNERS", "").split(",") if n}

state = hub_dir / "state"
state.mkdir(parents=True, exist_ok=True)
os.chmod(hub_dir, 0o700)  # the database, cookie secret and admin token are root's

token_file = hub_dir / "admin-token"  # made by `class-hub.sh setup`
try:
    admin_token = token_file.read_text().strip()
except FileNotFoundError:
    sys.exit(f"{token_file} is missing: run scripts/class-hub.sh setup first")
if not admin_token:
    sys.exit(f"{token_file} is empty: remove it and run scripts/class-hub.sh setup")

c.JupyterHub.bind_url = f"http://{ip}:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [str(hub_dir / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = learners  # JupyterHub 5: nobody may log in otherwise

c.JupyterHub.spawner_class = "localprocess"  # each learner as their own user
# The single-user server comes from the Python that runs the hub (class-hub.sh's), and
# finds the class kernelspec through JUPYTER_PATH (install.sh --class puts it in DIR/share).
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
# The login extension (rustmeter_login_spare) warms one kernel per learner as their server
# starts; install.sh --class put it in DIR/python and its switch in DIR/etc/jupyter.
c.Spawner.environment = {
    "JUPYTER_PATH": str(class_dir / "share" / "jupyter"),
    "JUPYTER_CONFIG_PATH": str(class_dir / "etc" / "jupyter"),
    "PYTHONPATH": str(class_dir / "python"),
}
c.Spawner.default_url = "/lab"


def ipc_transport_when_it_fits(spawner):
    """Kernels talk to their server over Unix sockets (0600, next to the connection file in
    the learner's 0700 runtime folder) instead of TCP ports on 127.0.0.1 that any account
    can reach: another learner cannot even connect, let alone subscribe to iopub. A socket
    path holds at most 107 bytes; with a home too deep for that the kernels keep TCP, where
    rustmeter's wire guard still refuses other accounts."""
    import pwd

    home = pwd.getpwnam(spawner.user.name).pw_dir
    longest = f"{home}/.local/share/jupyter/runtime/kernel-{'0' * 36}-ipc-99"
    if len(longest.encode()) <= 107:
        spawner.args = [*spawner.args, "--KernelManager.transport=ipc"]
    else:
        spawner.log.warning("%s's kernels use TCP: ipc socket paths under %s would be too long", spawner.user.name, home)


c.Spawner.pre_spawn_hook = ipc_transport_when_it_fits
# A busy 2-core machine starting five servers at once needs more than the 60 s default.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180

c.JupyterHub.services = [{"name": "class-admin", "api_token": admin_token}]
c.JupyterHub.load_roles = [
    {
        "name": "class-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
        "services": ["class-admin"],
    }
]
