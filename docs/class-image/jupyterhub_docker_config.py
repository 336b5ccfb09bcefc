"""JupyterHub configuration for a rustmeter class in Docker containers (DockerSpawner): each
learner's single-user server runs in a container of the class image
(docs/class-image/Dockerfile), on the host network, with a memory cap.

Read by `jupyterhub -f`; everything comes from the environment:

    RUSTMETER_CLASS_IMAGE      the image (default rustmeter-class:local, scripts/class-image.sh)
    RUSTMETER_HUB_PORT         public port on 127.0.0.1 (the hub API and the proxy API use +1, +2)
    RUSTMETER_HUB_LEARNERS     comma-separated learner names allowed to log in (no system
                               accounts: a learner is the image's user in their container)
    RUSTMETER_HUB_ADMIN_TOKEN  the `class-admin` service's token, for scripts and tests
    RUSTMETER_HUB_STATE        folder for the hub's database and cookie secret
    RUSTMETER_LEARNER_MEMORY   each container's memory cap (default 1.5G; docs/classroom.md
                               sizes it)
    RUSTMETER_HUB_PROXY        the configurable-http-proxy command (default: on PATH)

Host networking, because the containers must reach nothing but this machine's loopback
and the hub: each server listens on 127.0.0.1 at a port the spawner picks, and the hub
reaches it there. The host's loopback is shared by every container, and every container's
user is the same uid (jovyan), so kernels talk to their server over Unix sockets inside
their own container (--KernelManager.transport=ipc), never over loopback ports another
learner's container could reach. The dummy authenticator accepts any password: fine for a test or a demo
on localhost; a real class uses an OAuth authenticator. Each learner's home is a Docker
volume (rustmeter-home-NAME), so their work outlives their container, and the hub leaves
running servers alone when it restarts.
"""
import os
from pathlib import Path

from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

port = int(os.environ.get("RUSTMETER_HUB_PORT", "8000"))
learners = {n for n in os.environ.get("RUSTMETER_HUB_LEARNERS", "").split(",") if n}
admin_token = os.environ.get("RUSTMETER_HUB_ADMIN_TOKEN", "")
if len(admin_token) < 32:
    raise SystemExit("RUSTMETER_HUB_ADMIN_TOKEN must be set to a random token of at least 32 characters "
                     "(e.g. openssl rand -hex 32)")
state = Path(os.environ.get("RUSTMETER_HUB_STATE", "."))
state.mkdir(parents=True, exist_ok=True)


class HostNetworkSpawner(DockerSpawner):
    """DockerSpawner on the host network: every container shares the host's ports, so each
    server gets its own free port, and the hub reaches it on 127.0.0.1."""

    async def start(self):
        self.port = random_port()
        return await super().start()

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port


c.JupyterHub.spawner_class = HostNetworkSpawner
c.DockerSpawner.image = os.environ.get("RUSTMETER_CLASS_IMAGE", "rustmeter-class:local")
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True  # no port bindings: docker refuses them on the host network
c.DockerSpawner.ip = "127.0.0.1"
c.DockerSpawner.remove = True
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.args = ["--KernelManager.transport=ipc"]
c.DockerSpawner.mem_limit = os.environ.get("RUSTMETER_LEARNER_MEMORY", "1.5G")
c.DockerSpawner.name_template = "rustmeter-{username}"
c.DockerSpawner.volumes = {"rustmeter-home-{username}": "/home/jovyan"}
c.JupyterHub.cleanup_servers = False  # a hub restart must not remove learners' containers
# The first kernel in a fresh container warms up at login (the image's login extension).
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 1}"
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [os.environ.get("RUSTMETER_HUB_PROXY", "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = learners
c.JupyterHub.services = [{"name": "class-admin", "api_token": admin_token}]
c.JupyterHub.load_roles = [
    {
        "name": "class-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
        "services": ["class-admin"],
    }
]
