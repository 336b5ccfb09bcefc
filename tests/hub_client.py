"""Talking to a JupyterHub the way a browser does, for tests/test_hub.py: the hub's REST
API (with an admin token) to issue learners' tokens and start their servers, then each
single-user server's `/api/kernels` REST and the kernel's websocket. Plus a sampler of
the whole machine's memory and CPU (/proc/meminfo, /proc/stat) for the class figures, and
each learner's memory and CPU split by what its processes are (`role_of`).

Owns no hub and no users (scripts/class-hub.sh does); never talks ZeroMQ itself.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests
import websocket  # websocket-client

TELEMETRY_MIME = "application/vnd.rustmeter.telemetry+json"


class Hub:
    """The hub's REST API at `url` (e.g. http://127.0.0.1:8000) with the admin token."""

    def __init__(self, url: str, admin_token: str):
        self.url = url.rstrip("/")
        self.admin = {"Authorization": f"token {admin_token}"}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", headers=self.admin, timeout=60, **kwargs)

    def wait_up(self, timeout: float, process=None) -> None:
        """Waits until the hub's API answers an admin request (the token works), failing at
        once when the hub's `process` (a Popen) has exited."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.api("GET", "/users")
                if reply.ok:
                    return
                if reply.status_code in (401, 403):
                    raise AssertionError(f"JupyterHub refused the admin token: {reply.status_code} {reply.text[:200]}")
            except requests.ConnectionError:
                pass
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"JupyterHub exited ({process.returncode}) before its API answered")
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterHub did not answer at {self.url} within {timeout:.0f} s")
            time.sleep(0.5)

    def user_token(self, name: str) -> str:
        reply = self.api("POST", f"/users/{name}/tokens", json={"note": "rustmeter class test", "expires_in": 3600})
        assert reply.status_code == 201, f"token for {name}: {reply.status_code} {reply.text}"
        return reply.json()["token"]

    def start_server(self, name: str) -> None:
        reply = self.api("POST", f"/users/{name}/server")
        assert reply.status_code in (201, 202), f"starting {name}'s server: {reply.status_code} {reply.text}"

    def wait_ready(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{name}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(1)
        raise TimeoutError(f"{name}'s single-user server not ready after {timeout:.0f} s")


@dataclass
class CellRun:
    """One executed cell: nbformat-shaped outputs (the live footer's updates applied, as
    nbclient does) and the reply's status."""

    source: str
    tags: list[str]
    outputs: list[dict] = field(default_factory=list)
    status: str = ""

    def get(self, key: str, default=None):  # notebooks/execute.py reads cells as mappings
        return {"outputs": self.outputs, "source": self.source}.get(key, default)


class LearnerKernel:
    """A rustmeter kernel in a learner's single-user server, driven over its websocket
    with the learner's own token."""

    def __init__(self, hub_url: str, user: str, token: str):
        self.base = f"{hub_url.rstrip('/')}/user/{user}"
        self.headers = {"Authorization": f"token {token}"}
        self.session = uuid.uuid4().hex
        self.user = user
        self.kernel_id = ""
        self.ws: websocket.WebSocket | None = None

    def start(self, kernel_name: str = "rustmeter") -> str:
        reply = requests.post(f"{self.base}/api/kernels", json={"name": kernel_name}, headers=self.headers, timeout=120)
        assert reply.status_code == 201, f"{self.user}: starting a kernel: {reply.status_code} {reply.text}"
        self.kernel_id = reply.json()["id"]
        self.ws = channels(self.base, self.kernel_id, self.headers)
        return self.kernel_id

    def execute(self, cell: CellRun, timeout: float) -> CellRun:
        assert self.ws is not None
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps(message("execute_request", msg_id, self.session, self.user, {
            "code": cell.source, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        })))
        by_display: dict[str, int] = {}
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            self.ws.settimeout(max(1.0, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.user}: cell did not finish in {timeout:.0f} s: {cell.source[:80]!r}")
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                cell.status, replied = content["status"], True
            elif kind == "status":
                idle = content["execution_state"] == "idle"
            elif kind == "stream":
                cell.outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind == "error":
                cell.outputs.append({"output_type": "error", **{k: content[k] for k in ("ename", "evalue", "traceback")}})
            elif kind in ("display_data", "execute_result"):
                display_id = content.get("transient", {}).get("display_id")
                if display_id:
                    by_display[display_id] = len(cell.outputs)
                cell.outputs.append({"output_type": kind, "data": content["data"]})
            elif kind == "update_display_data":
                index = by_display.get(content.get("transient", {}).get("display_id", ""))
                if index is not None:
                    cell.outputs[index]["data"] = content["data"]
        return cell

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.kernel_id:
            requests.delete(f"{self.base}/api/kernels/{self.kernel_id}", headers=self.headers, timeout=60)


def channels(base: str, kernel_id: str, headers: dict) -> websocket.WebSocket:
    """The kernel's websocket (raises websocket.WebSocketBadStatusException when refused)."""
    url = base.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"
    return websocket.create_connection(url, header=[f"{k}: {v}" for k, v in headers.items()], timeout=60)


def message(kind: str, msg_id: str, session: str, user: str, content: dict) -> dict:
    header = {"msg_id": msg_id, "msg_type": kind, "session": session, "username": user,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": "5.3"}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content,
            "channel": "shell", "buffers": []}


class MachineSampler(threading.Thread):
    """Every `period` seconds until stopped: the whole machine's used memory (MemTotal -
    MemAvailable) and busy cores, and the memory (PSS) of each of `uids`' processes —
    the machine is shared, so the learners' own share is measured apart."""

    def __init__(self, uids: dict[str, int], period: float = 0.5):
        super().__init__(daemon=True)
        self.period = period
        self.uids = uids
        self.stopping = threading.Event()
        self.used_bytes: list[int] = []
        self.busy_cores: list[float] = []
        self.learner_pss: dict[str, list[int]] = {name: [] for name in uids}
        # Each learner's memory by role (ROLES) in the sample where its total was highest.
        self.split_at_peak: dict[str, dict[str, int]] = {name: {} for name in uids}

    @staticmethod
    def used_memory() -> int:
        fields = {}
        with open("/proc/meminfo") as f:
            for line in f:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) * 1024
        return fields["MemTotal"] - fields["MemAvailable"]

    @staticmethod
    def cpu_ticks() -> tuple[int, int]:
        """(busy, total) jiffies of all cores since boot."""
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # user..steal; guest time is already in user
        return total - idle, total

    def run(self) -> None:
        busy0, total0 = self.cpu_ticks()
        while not self.stopping.wait(self.period):
            busy1, total1 = self.cpu_ticks()
            if total1 > total0:
                # /proc/stat's first line sums every core: busy share × core count.
                self.busy_cores.append((busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1))
            busy0, total0 = busy1, total1
            self.used_bytes.append(self.used_memory())
            pss = {uid: 0 for uid in self.uids.values()}
            split: dict[int, dict[str, int]] = {uid: {} for uid in pss}
            for pid, uid in processes(set(pss)):
                size = proportional_set_size(pid)
                pss[uid] += size
                role = role_of(pid)
                split[uid][role] = split[uid].get(role, 0) + size
            for name, uid in self.uids.items():
                if pss[uid] > max(self.learner_pss[name], default=-1):
                    self.split_at_peak[name] = split[uid]
                self.learner_pss[name].append(pss[uid])

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def processes(uids: set[int]) -> list[tuple[int, int]]:
    """(pid, uid) of the live processes owned by `uids`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if uid in uids:
                found.append((int(entry.name), uid))
    return found


def proportional_set_size(pid: int) -> int:
    """The process's PSS in bytes (shared pages divided among their users), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


ROLES = ("server", "kernel", "compilers", "your code", "other")
COMPILERS = {"cargo", "rustc", "cc", "gcc", "clang", "collect2", "ld", "rust-lld", "mold"}


def role_of(pid: int) -> str:
    """What a learner's process is, from its command line: the Jupyter server; the rustmeter
    kernel (evcxr and its in-process rust-analyzer, the telemetry sampler); the compilers
    a cell's build runs (cargo, rustc and rustmeter's wrapper around it, the linker); the
    process that runs the learner's code (evcxr's child, the demo server); or other."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "other"
    if not argv:
        return "other"
    program = os.path.basename(argv[0])
    if program == "rustmeter":
        if argv[1:2] in (["kernel"], ["spare"]):  # a spare is a kernel warmed before it is needed
            return "kernel"
        if len(argv) == 1 or argv[1] == "demo-server":
            return "your code"
        if os.path.basename(argv[1]) == "rustc" or "/toolchains/" in argv[1]:
            return "compilers"  # the wrapper cargo runs in rustc's place
        return "other"
    if program in COMPILERS or program.startswith("ld."):  # ld.bfd, ld.gold, ld.lld, ld.mold
        return "compilers"
    if any("jupyter" in os.path.basename(a) for a in argv[:3]):
        return "server"
    return "other"


def cpu_by_role(uid: int) -> dict[str, float]:
    """CPU seconds of `uid`'s live processes by role (`role_of`). Children that ended and
    were waited for count with their parent's role, except the kernel's: the children it
    waits for are cargo (and cargo's, rustc and the linker), so they count as compilers.
    Two blurs, both small in a class run: the kernel also waits for its code process when
    that restarts (a panic, `:restart`, a time limit), which then counts as compilers; and
    a process that ends between two readings moves its CPU to its parent's role."""
    ticks = {role: 0 for role in ROLES}
    for pid, _ in processes({uid}):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        role = role_of(pid)
        ticks[role] += own
        ticks["compilers" if role == "kernel" else role] += children
    return {role: t / os.sysconf("SC_CLK_TCK") for role, t in ticks.items()}
