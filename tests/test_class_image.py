"""The class image (docs/class-image/Dockerfile) in a real container: its Jupyter server
starts, serves the rustmeter kernelspec, and runs the async tutorial's first cells with a
footer under each; tokio comes from the image's shared cache (no compile); and a memory
cap on the container (docker run --memory, as JupyterHub's spawners set mem_limit) ends a
cell that goes over it while the kernel keeps going. Then JupyterHub with DockerSpawner
(docs/class-image/jupyterhub_docker_config.py) spawns five learners' servers in containers
of the image at once, and each runs those cells: footers, tokio from the image's cache,
the memory cap and host network on each container, kernels on Unix sockets.

The image is scripts/class-image.sh's (rustmeter-class:local, or RUSTMETER_CLASS_IMAGE).
The README's test command (scripts/test.sh) builds it from the checkout first, about 4
minutes here, installing and starting Docker as root when missing; run alone, these tests
use the image that is there, or build it first when RUSTMETER_CLASS_IMAGE_BUILD=1
(docs/classroom.md). They skip, saying why, only where Docker cannot run; a build that
failed where Docker runs fails them. The container uses the host network (this machine's
loopback only) and no registry.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from browser_helpers import free_port
from hub_client import TELEMETRY_MIME, CellRun, LearnerKernel
from test_hub import free_port_triple

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("RUSTMETER_CLASS_IMAGE", "rustmeter-class:local")
LEARNER = "jovyan"  # the image's user; the server's URL has the hub's /user/NAME/ shape
MEMORY_CAP_MB = 1536
FIRST_CELL_TIMEOUT = 300  # the kernel's first cell in a new home compiles evcxr's runtime
CELL_TIMEOUT = 120


def docker_unavailable_reason() -> str:
    if shutil.which("docker") is None:
        return "no docker client (scripts/class-image.sh installs Debian's docker.io as root)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker daemon answers (scripts/class-image.sh starts dockerd as root)"
    return ""


def image_present() -> bool:
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def image() -> str:
    if os.environ.get("RUSTMETER_CLASS_IMAGE_BUILD") == "1":
        subprocess.run([str(ROOT / "scripts" / "class-image.sh"), "--debian-base", "--local-toolchain", "--tag", IMAGE],
                       check=True, timeout=1800)
    failed_build = os.environ.get("RUSTMETER_CLASS_IMAGE_BUILD_FAILED")
    if failed_build:
        tail = Path(failed_build).read_text(errors="replace")[-3000:] if Path(failed_build).exists() else ""
        pytest.fail(f"scripts/class-image.sh could not build {IMAGE} where Docker runs (log {failed_build}):\n{tail}")
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not image_present():
        pytest.skip(f"no image {IMAGE}: build it with scripts/class-image.sh --debian-base --local-toolchain "
                    "(about 4 minutes), or run with RUSTMETER_CLASS_IMAGE_BUILD=1")
    return IMAGE


@pytest.fixture(scope="module")
def server(image):
    """JupyterLab in a container of the image, as the learner, memory-capped; yields its URL
    (the hub-shaped base /user/jovyan/), token and container name."""
    port, token = free_port(), secrets.token_hex(16)
    name = f"rustmeter-image-test-{port}"
    url = f"http://127.0.0.1:{port}"
    try:
        subprocess.run([
            "docker", "run", "-d", "--rm", "--name", name, "--network", "host",
            "--memory", f"{MEMORY_CAP_MB}m", "--memory-swap", f"{MEMORY_CAP_MB}m", image,
            "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--ServerApp.token={token}", f"--ServerApp.base_url=/user/{LEARNER}/",
        ], check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/user/{LEARNER}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the image's server did not answer in 120 s:\n{logs(name)}"
            time.sleep(1)
        yield url, token, name
    finally:
        print(logs(name)[-3000:])
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)


def logs(name: str) -> str:
    done = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def in_container(name: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", "-u", LEARNER, name, *command], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def tutorial_cells(stem: str, count: int) -> list[str]:
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][:count]


def assert_tokio_from_the_image(hits: str) -> None:
    """The learner's dependency-cache record: tokio restored from the image's shared tier, and
    compiled by no kernel of theirs (the login spare's warm-up restores it too, so a hit
    alone would not show that the learner's own kernel did)."""
    rows = [line.split() for line in hits.splitlines()]
    assert any(r[1] == "tokio" and r[3] == "hit" and "/opt/rustmeter/cache" in r[5:] for r in rows), \
        f"tokio did not come from the image's shared cache:\n{hits}"
    assert not [r for r in rows if r[1] == "tokio" and r[3] == "miss"], f"a kernel compiled tokio:\n{hits}"


def footer(cell: CellRun) -> dict:
    found = [o["data"][TELEMETRY_MIME] for o in cell.outputs if TELEMETRY_MIME in o.get("data", {})]
    assert found, f"no footer under {cell.source[:60]!r}: {cell.outputs}"
    return found[-1]


def test_the_class_image_runs_the_tutorial_with_footers_from_its_shared_cache_under_a_memory_cap(server):
    url, token, name = server
    specs = requests.get(f"{url}/user/{LEARNER}/api/kernelspecs", headers={"Authorization": f"token {token}"},
                         timeout=30).json()
    assert "rustmeter" in specs["kernelspecs"], f"the image's Jupyter has no rustmeter kernelspec: {list(specs['kernelspecs'])}"
    env = specs["kernelspecs"]["rustmeter"]["spec"].get("env", {})
    assert env.get("CARGO_NET_OFFLINE") == "true" and env.get("RUSTMETER_SHARED_CACHE") == "/opt/rustmeter/cache", env

    kernel = LearnerKernel(url, LEARNER, token)
    kernel.start()
    try:
        for index, source in enumerate(tutorial_cells("04-async", 3)):
            cell = kernel.execute(CellRun(source, []), FIRST_CELL_TIMEOUT if index == 0 else CELL_TIMEOUT)
            assert cell.status == "ok", f"cell {index + 1} of 04-async in the image: {cell.status} {cell.outputs}"
            t = footer(cell)
            assert t.get("status") == "ok" and t.get("run_ms", -1) >= 0, t
        answer = [o["data"]["text/plain"] for o in cell.outputs if o["output_type"] == "execute_result"]
        assert answer and answer[0].strip().isdigit(), f"get(addr, 7) in the image gave no next id: {cell.outputs}"

        hits = in_container(name, "cat", f"/home/{LEARNER}/.cache/rustmeter/deps/hits.log")
        assert_tokio_from_the_image(hits)

        # Over the container's memory cap: the cell fails in the learner's words, the kernel
        # stays (its user-code process restarts; the message names the variables lost).
        hog = kernel.execute(CellRun("let hog: Vec<u8> = vec![1; 3 << 30];\n"
                                     "hog.iter().step_by(4096).map(|&b| b as u64).sum::<u64>()", []), CELL_TIMEOUT)
        errors = [o["evalue"] for o in hog.outputs if o["output_type"] == "error"]
        assert hog.status == "error" and errors and "out of memory" in errors[0] and "addr" in errors[0], \
            f"a 3 GB cell under a {MEMORY_CAP_MB} MB cap: {hog.status} {hog.outputs}"
        after = kernel.execute(CellRun("1 + 1", []), CELL_TIMEOUT)
        results = [o["data"]["text/plain"] for o in after.outputs if o["output_type"] == "execute_result"]
        assert after.status == "ok" and results == ["2"], f"after the capped cell: {after.status} {after.outputs}"
        footer(after)
    finally:
        kernel.close()


# ------------------------------------------------------------- a class under DockerSpawner

LEARNERS = [f"learner{i}" for i in range(1, 6)]
HUB_CONFIG = ROOT / "docs" / "class-image" / "jupyterhub_docker_config.py"
CHP_VERSION = "4"  # configurable-http-proxy major version, as scripts/class-hub.sh


@pytest.fixture(scope="module")
def docker_hub(image, tmp_path_factory):
    """JupyterHub with DockerSpawner (docs/class-image/jupyterhub_docker_config.py) in its
    own venv and folder; yields a hub_client.Hub. Every container it started is removed."""
    from hub_client import Hub

    root = tmp_path_factory.mktemp("docker-hub")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "jupyterhub", "dockerspawner"], check=True, timeout=900)
    subprocess.run(["npm", "install", "--silent", "--no-fund", "--no-audit", "--prefix", str(root),
                    f"configurable-http-proxy@{CHP_VERSION}"], check=True, timeout=600)
    port, token = free_port_triple(), secrets.token_hex(32)
    remove_learner_containers()  # and their home volumes: every run starts from the image
    env = {**os.environ, "RUSTMETER_CLASS_IMAGE": image, "RUSTMETER_HUB_PORT": str(port),
           "RUSTMETER_HUB_LEARNERS": ",".join(LEARNERS), "RUSTMETER_HUB_ADMIN_TOKEN": token,
           "RUSTMETER_HUB_STATE": str(root / "state"),
           "RUSTMETER_HUB_PROXY": str(root / "node_modules" / ".bin" / "configurable-http-proxy")}
    log = (root / "hub.log").open("w")
    hub_process = subprocess.Popen([str(venv / "bin" / "jupyterhub"), "-f", str(HUB_CONFIG)], cwd=root, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub = Hub(f"http://127.0.0.1:{port}", token)
    try:
        hub.wait_up(120, hub_process)
        yield hub
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hub_process.pid, signal.SIGTERM)  # the hub and its proxy
        try:
            hub_process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(hub_process.pid, signal.SIGKILL)
        remove_learner_containers()
        print((root / "hub.log").read_text()[-4000:])


def remove_learner_containers() -> None:
    subprocess.run(["docker", "rm", "-f", *(f"rustmeter-{n}" for n in LEARNERS)], capture_output=True, timeout=120)
    subprocess.run(["docker", "volume", "rm", "-f", *(f"rustmeter-home-{n}" for n in LEARNERS)],
                   capture_output=True, timeout=120)


def run_learner(hub, name: str, cells: list[str], results: dict) -> None:
    try:
        token = hub.user_token(name)
        hub.start_server(name)
        hub.wait_ready(name, 300)
        kernel = LearnerKernel(hub.url, name, token)
        kernel.start()
        try:
            runs = [kernel.execute(CellRun(source, []), FIRST_CELL_TIMEOUT) for source in cells]
            # While the kernel runs: how its server talks to it.
            connections = subprocess.run(["docker", "exec", "-u", LEARNER, f"rustmeter-{name}", "sh", "-c",
                                          f"cat /home/{LEARNER}/.local/share/jupyter/runtime/kernel-*.json"],
                                         capture_output=True, text=True, timeout=60).stdout
            results[name] = (runs, connections)
        finally:
            kernel.close()
    except Exception as error:  # reported by the test, per learner
        results[name] = error


def test_five_learners_run_the_tutorial_in_containers_spawned_by_the_hub(docker_hub):
    cells = tutorial_cells("04-async", 3)
    results: dict = {}
    threads = [threading.Thread(target=run_learner, args=(docker_hub, name, cells, results), daemon=True)
               for name in LEARNERS]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(1500)  # a learner's worst case: server 300 s, then three cells
    took = time.monotonic() - started
    for name in LEARNERS:
        assert isinstance(results.get(name), tuple), f"{name}: {results.get(name)!r}"
        runs, connections = results[name]
        for index, cell in enumerate(runs):
            assert cell.status == "ok", f"{name}, cell {index + 1}: {cell.status} {cell.outputs}"
            assert footer(cell).get("status") == "ok"
    for name in LEARNERS:
        inspect = json.loads(subprocess.run(["docker", "inspect", f"rustmeter-{name}"], capture_output=True, text=True,
                                            check=True, timeout=60).stdout)[0]
        assert inspect["Config"]["Image"] == IMAGE, inspect["Config"]["Image"]
        assert inspect["HostConfig"]["Memory"] == int(1.5 * 1024 ** 3), inspect["HostConfig"]["Memory"]
        assert inspect["HostConfig"]["NetworkMode"] == "host"
        hits = subprocess.run(["docker", "exec", "-u", LEARNER, f"rustmeter-{name}", "cat",
                               f"/home/{LEARNER}/.cache/rustmeter/deps/hits.log"],
                              capture_output=True, text=True, check=True, timeout=60).stdout
        assert_tokio_from_the_image(hits)
        # Kernels on the shared loopback would be reachable from every container (same uid):
        # they use Unix sockets inside their own container instead.
        transports = re.findall(r'"transport":\s*"(\w+)"', connections)
        assert transports and set(transports) == {"ipc"}, f"{name}'s kernels: {connections[:500]}"
    slowest = max(sum(footer(c).get("wall_ms", 0) for c in results[n][0]) for n in LEARNERS)
    print(f"5 learners in containers: all three cells done in {took:.0f} s; slowest learner's cells {slowest / 1000:.1f} s")
