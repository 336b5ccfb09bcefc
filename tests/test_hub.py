"""A class on JupyterHub: five real system users, one shared rustmeter install, the async
tutorial's key cells run by all five at the same moment.

The hub is the one docs/classroom.md sets up, through the same commands
(scripts/class-hub.sh setup / add-learners / start / remove-learners): a real JupyterHub
with configurable-http-proxy, the dummy authenticator and the default LocalProcessSpawner,
so each learner's server and kernels run as that learner. The test talks to it like a
browser: hub REST API for tokens and servers, each server's kernels REST and websocket.

Class mode warms one kernel per learner from login (the servers' rustmeter_login_spare
extension): the test waits for each learner's warm kernel, prints the memory a logged-in
learner holds before opening anything, checks that each learner's first kernel is the warm
one and prints each learner's time from launch to the first result.

Checks: every cell finishes without error and has its telemetry footer; the demo
servers got different ports; no learner compiled a crate the shared cache holds (tokio
comes from it); a learner's token is refused by another's server, and a learner's uid
cannot read another's home, kernel connection file or kernel folder. Prints the class
figures (total and per-learner wall time, peak memory and CPU of the machine; where each
learner's peak memory and CPU went, by process role, which must name nearly all of it) and
the sizing table docs/classroom.md quotes.

Needs root (useradd, setuid servers). The class install goes to RUSTMETER_CLASS_DIR
(scripts/test.sh makes a new one for every run; by hand the default is /opt/rustmeter, kept
between runs like a real class machine); `class-hub.sh setup` makes the hub's admin token
before the hub first starts. Removes the learners, their homes, the hub's processes and
its state (also at the start, after a killed run).
"""
from __future__ import annotations

import json
import math
import os
import pwd
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import requests
import websocket

from hub_client import (
    CellRun,
    Hub,
    LearnerKernel,
    MachineSampler,
    ROLES,
    channels,
    cpu_by_role,
    processes,
    proportional_set_size,
)
from kernel_helpers import NOTEBOOKS, ROOT

sys.path.insert(0, str(NOTEBOOKS))
from execute import telemetry  # noqa: E402  (notebooks/execute.py)

SCRIPT = ROOT / "scripts" / "class-hub.sh"
CLASS_DIR = Path(os.environ.get("RUSTMETER_CLASS_DIR", "/opt/rustmeter"))


def learner_count() -> int:
    """5, or RUSTMETER_CLASS_LEARNERS (bench/class_load sets it)."""
    raw = os.environ.get("RUSTMETER_CLASS_LEARNERS", "5")
    if not raw.isdigit() or not 2 <= int(raw) <= 60:
        raise ValueError(f"RUSTMETER_CLASS_LEARNERS must be a whole number of learners from 2 to 60, not {raw!r}")
    return int(raw)


LEARNERS = [f"rmlearner{i}" for i in range(1, learner_count() + 1)]
NOTEBOOK = NOTEBOOKS / "04-async.ipynb"
CELL_TIMEOUT = 600
SKIPPED_TAGS = {"raises-exception", "exercise", "self-check"}
# The last cells show the caps in force and ask each learner's demo server for its address.
LIMITS_PROBE = ":limits"
PORT_PROBE = 'println!("demo port {}", server.addr.port());'
# Each learner's first cell, sent as soon as their first kernel answers.
FIRST_LET = "let warm_from_login: u64 = 40 + 2;\nwarm_from_login"
SPARE_READY_TIMEOUT = 420  # s: five spares warming at once on 2 cores
# The class's caps (docs/classroom.md): the threads notebook needs 10,000 threads.
CLASS_CAPS = ["--memory-limit", "2G", "--thread-limit", "12000"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the class hub test creates system users: run as root")


def script(*args: str, timeout: float = 900) -> str:
    """Runs scripts/class-hub.sh; the binary is the one the test run built (RUSTMETER_BIN).
    The learners' cgroups go under the test's own (`here`): a container may not leave its."""
    env = dict(os.environ, RUSTMETER_CLASS_DIR=str(CLASS_DIR), PYTHON=sys.executable, RUSTMETER_CLASS_CGROUP="here")
    binary = os.environ.get("RUSTMETER_BIN")
    if binary:
        env["CARGO_TARGET_DIR"] = str(Path(binary).resolve().parent.parent)
    done = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"class-hub.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def free_port_triple() -> int:
    """A port p with p, p+1 and p+2 free (proxy, hub API, proxy API)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 2 > 65535:
            continue
        try:
            for p in (port + 1, port + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def key_cells() -> list[CellRun]:
    """The async tutorial up to its last `measure:` cell: setup, helpers, key cells."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    last = max(i for i, c in enumerate(code) if any(t.startswith("measure:") for t in c.metadata.get("tags", [])))
    cells = [
        CellRun(source=c.source, tags=list(c.metadata.get("tags", [])))
        for c in code[: last + 1]
        if not SKIPPED_TAGS & set(c.metadata.get("tags", []))
    ]
    assert "setup" in cells[0].tags, "the async tutorial must start with its setup cell"
    return cells + [CellRun(source=LIMITS_PROBE, tags=["limits-probe"]), CellRun(source=PORT_PROBE, tags=["port-probe"])]


def run_as(user: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def class_hub():
    """The class install, five learners and a running hub; all but the install removed after."""
    # A clean slate if an earlier run was killed: its learners and the hub's database.
    script("remove-learners", *LEARNERS)
    shutil.rmtree(CLASS_DIR / "hub" / "state", ignore_errors=True)
    started = time.monotonic()
    script("setup", "--no-build", *CLASS_CAPS)
    setup_s = time.monotonic() - started
    script("add-learners", *LEARNERS)
    port = free_port_triple()
    env = dict(os.environ, RUSTMETER_CLASS_DIR=str(CLASS_DIR), RUSTMETER_HUB_PORT=str(port))
    log = open(CLASS_DIR / "hub" / "test-hub.log", "w")
    # setup made the token (part of the install); the hub reads it when it starts.
    token = (CLASS_DIR / "hub" / "admin-token").read_text().strip()
    hub_process = subprocess.Popen([str(SCRIPT), "start", *LEARNERS], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        hub = Hub(f"http://127.0.0.1:{port}", token)
        hub.wait_up(120, hub_process)
        yield hub, setup_s
    finally:
        # SIGTERM: JupyterHub stops the learners' servers (and their kernels) and the proxy.
        hub_process.send_signal(signal.SIGTERM)
        try:
            hub_process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(hub_process.pid, signal.SIGKILL)
            hub_process.wait(10)
        log.close()
        script("remove-learners", *LEARNERS)
        shutil.rmtree(CLASS_DIR / "hub" / "state", ignore_errors=True)


def test_class_hub_script_names_what_is_wrong() -> None:
    """Bad input to the instructor's script: an error naming the culprit, nothing done."""
    cases = {
        ("add-learners", "Bad Name"): "not a valid learner account name: 'Bad Name'",
        ("start", "rmnosuchlearner"): "no system account rmnosuchlearner",
        ("start",): "start needs the learners' account NAMEs",
        ("frobnicate",): "unknown command: frobnicate",
    }
    for args, expected in cases.items():
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, RUSTMETER_CLASS_DIR=str(CLASS_DIR)))
        assert done.returncode != 0 and expected in done.stderr, f"class-hub.sh {args}: {done.returncode} {done.stderr}"
    assert subprocess.run(["id", "Bad Name"], capture_output=True).returncode != 0


def spares_folders(user: str) -> list[Path]:
    """Where a learner's warm spares live: the runtime folder's, else the cache's."""
    entry = pwd.getpwnam(user)
    return [Path(f"/run/user/{entry.pw_uid}/rustmeter/spares"), Path(entry.pw_dir) / ".cache/rustmeter/run/spares"]


def spare_ready(user: str) -> bool:
    return any(list(folder.glob("*.sock")) for folder in spares_folders(user) if folder.is_dir())


def served_by_spare(user: str) -> bool:
    """A launcher stays as the proxy of the spare that serves it, and says so in a file."""
    return any(list(folder.glob("proxy-*")) for folder in spares_folders(user) if folder.is_dir())


def learner_run(hub_url: str, user: str, token: str, cells: list[CellRun], barrier: threading.Barrier,
                results: dict) -> None:
    kernel = LearnerKernel(hub_url, user, token)
    try:
        results[user] = {"kernel": kernel, "cells": cells}
        launched = time.monotonic()
        kernel.start()
        first = kernel.execute(CellRun(FIRST_LET, ["first-let"]), CELL_TIMEOUT)
        results[user]["first_result_s"] = time.monotonic() - launched
        results[user]["first_cell"] = first
        results[user]["served_by_spare"] = served_by_spare(user)
        barrier.wait(timeout=600)
        started = time.monotonic()
        for cell in cells:
            kernel.execute(cell, CELL_TIMEOUT)
        results[user]["wall_s"] = time.monotonic() - started
        results[user]["end"] = time.monotonic()
    except BaseException as e:  # reported by the test, with the learner's name
        results.setdefault(user, {})["failure"] = f"{type(e).__name__}: {e}"
        barrier.abort()


def test_five_learners_run_the_async_tutorial_at_once(class_hub, capsys) -> None:
    hub, setup_s = class_hub
    uids = {name: pwd.getpwnam(name).pw_uid for name in LEARNERS}
    sampler = MachineSampler(uids)
    sampler.start()
    idle_used = sampler.used_memory()
    tokens = {name: hub.user_token(name) for name in LEARNERS}
    for name in LEARNERS:
        hub.start_server(name)
    for name in LEARNERS:
        hub.wait_ready(name, 300)
    warm = warm_kernels_from_login(uids)

    barrier = threading.Barrier(len(LEARNERS) + 1)
    results: dict[str, dict] = {}
    threads = [threading.Thread(target=learner_run, args=(hub.url, n, tokens[n], key_cells(), barrier, results))
               for n in LEARNERS]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        pass
    started = time.monotonic()
    cpu_before = {name: cpu_by_role(uid) for name, uid in uids.items()}
    for t in threads:
        t.join(CELL_TIMEOUT * 20)
    cpu_after = {name: cpu_by_role(uid) for name, uid in uids.items()}
    cpu_used = {name: {role: cpu_after[name][role] - cpu_before[name][role] for role in ROLES} for name in uids}
    sampler.stop()
    try:
        failures = {n: r["failure"] for n, r in results.items() if "failure" in r}
        assert not failures, f"learners failed: {failures}"
        for name in LEARNERS:
            first = results[name]["first_cell"]
            said = "".join(o.get("data", {}).get("text/plain", "") for o in first.outputs)
            assert first.status == "ok" and "42" in said, f"{name}'s first cell: {first.status} {first.outputs}"
        cold = [name for name in LEARNERS if not results[name]["served_by_spare"]]
        assert not cold, f"the first kernel of {cold} was not the warm one started at login"
        total_s = max(r["end"] for r in results.values()) - started

        problems = []
        ports = {}
        for name in LEARNERS:
            for cell in results[name]["cells"]:
                errors = [f"{o['ename']}: {o['evalue']}" for o in cell.outputs if o["output_type"] == "error"]
                if errors or cell.status != "ok":
                    problems.append(f"{name}: {cell.tags} {cell.source[:60]!r}: {cell.status} {errors}")
                elif telemetry(cell) is None:
                    problems.append(f"{name}: {cell.tags} {cell.source[:60]!r} has no telemetry footer")
            probe = "".join(o.get("text", "") for o in results[name]["cells"][-1].outputs)
            ports[name] = probe.split("demo port ")[-1].split()[0] if "demo port " in probe else None
        assert not problems, "\n".join(problems)
        check_caps_enforced(results)
        assert None not in ports.values() and len(set(ports.values())) == len(LEARNERS), \
            f"demo servers must each have their own port: {ports}"

        check_split_names_the_work(sampler, cpu_used)
        compiled = check_shared_cache_hits()
        check_isolation(hub, tokens, results)
        report = figures(setup_s, total_s, results, sampler, idle_used, cpu_used, compiled,
                         len(results[LEARNERS[0]]["cells"]), warm)
        with capsys.disabled():
            print("\n" + report)
    finally:
        for r in results.values():
            if "kernel" in r:
                r["kernel"].close()


LOAD_CELLS = 3  # the class-load benchmark's cells: the tutorial's first three


def first_cells_run(hub_url: str, user: str, token: str, cells: list[CellRun], barrier: threading.Barrier,
                    results: dict) -> None:
    """One learner of the class-load benchmark: waits for everyone, then opens a kernel and
    runs `cells`, noting when each reply came (from the launch)."""
    kernel = LearnerKernel(hub_url, user, token)
    results[user] = {"kernel": kernel, "cells": cells, "replied_s": []}
    try:
        barrier.wait(timeout=900)
        launched = time.monotonic()
        kernel.start()
        for cell in cells:
            kernel.execute(cell, CELL_TIMEOUT)
            results[user]["replied_s"].append(time.monotonic() - launched)
        results[user]["served_by_spare"] = served_by_spare(user)
    except BaseException as e:  # reported by the test, with the learner's name
        results[user]["failure"] = f"{type(e).__name__}: {e}"
        barrier.abort()


@pytest.mark.skipif("RUSTMETER_CLASS_LEARNERS" not in os.environ,
                    reason="a benchmark (bench/class_load): set RUSTMETER_CLASS_LEARNERS to run it")
def test_class_load_first_cells_at_the_same_second(class_hub, capsys) -> None:
    """Every learner logs in, then all open the tutorial and run its first cells at the same
    second: the slowest learner's time to each result, and where each cell's time went."""
    hub, _ = class_hub
    tokens = {name: hub.user_token(name) for name in LEARNERS}
    login = time.monotonic()
    for name in LEARNERS:
        hub.start_server(name)
    for name in LEARNERS:
        hub.wait_ready(name, 900)
    servers_s = time.monotonic() - login
    barrier = threading.Barrier(len(LEARNERS) + 1)
    results: dict[str, dict] = {}
    # Each learner its own cells: a run writes its outputs into them.
    threads = [threading.Thread(target=first_cells_run,
                                args=(hub.url, n, tokens[n], key_cells()[:LOAD_CELLS], barrier, results))
               for n in LEARNERS]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=900)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(CELL_TIMEOUT * (LOAD_CELLS + 1))
    try:
        failures = {n: r["failure"] for n, r in results.items() if "failure" in r}
        assert not failures, f"learners failed: {failures}"
        problems = [f"{n}: cell {i + 1}: {c.status}, footer {telemetry(c) is not None}"
                    for n in LEARNERS for i, c in enumerate(results[n]["cells"])
                    if c.status != "ok" or telemetry(c) is None]
        assert not problems, "\n".join(problems)
        with capsys.disabled():
            print("\n" + load_figures(results, servers_s))
    finally:
        for r in results.values():
            r["kernel"].close()


def load_figures(results: dict, servers_s: float) -> str:
    """Per cell: the slowest learner's time from launch to that result, and the split of
    its time from the footer (waited for the kernel's start-up, queued, compile, run)."""
    n = len(LEARNERS)
    spread = lambda values: f"median {statistics.median(values):.1f} s (range {min(values):.1f}–{max(values):.1f})"
    lines = [f"class load: {n} learners, first {LOAD_CELLS} cells of {NOTEBOOK.name} at the same second,"
             f" once all {n} servers were up ({servers_s:.0f} s after the logins); {os.cpu_count()} cores",
             f"  first kernel was the warm one from login for {sum(bool(r.get('served_by_spare')) for r in results.values())}"
             f" of {n} learners"]
    for i in range(LOAD_CELLS):
        replied = [results[name]["replied_s"][i] for name in LEARNERS]
        figures = [telemetry(results[name]["cells"][i]) for name in LEARNERS]
        part = lambda key: [f.get(key, 0) / 1000 for f in figures]
        warm_up = [(f.get("warm_up") or {}).get("waited_ms", 0) / 1000 for f in figures]
        lines.append(f"  cell {i + 1}: launch → result, slowest learner {max(replied):.1f} s, {spread(replied)}")
        lines.append(f"          queued {spread(part('queue_ms'))}, of which the kernel's start-up {spread(warm_up)};"
                     f" compile {spread(part('compile_ms'))}; run {spread(part('run_ms'))}")
    return "\n".join(lines)


def warm_kernels_from_login(uids: dict[str, int]) -> dict:
    """Waits until every learner's server has warmed its learner's kernel (nobody opened a
    notebook yet); returns how long that took after the servers were up, and the memory
    (PSS) each learner's processes hold then: server and warm kernel."""
    started = time.monotonic()
    deadline = started + SPARE_READY_TIMEOUT
    waiting = set(LEARNERS)
    while waiting and time.monotonic() < deadline:
        waiting = {name for name in waiting if not spare_ready(name)}
        time.sleep(1)
    assert not waiting, f"no warm kernel from login for {sorted(waiting)} in {SPARE_READY_TIMEOUT} s"
    seconds = time.monotonic() - started
    held = {name: 0 for name in LEARNERS}
    for pid, uid in processes(set(uids.values())):
        name = next(n for n, u in uids.items() if u == uid)
        held[name] += proportional_set_size(pid)
    return {"seconds": seconds, "held": held}


def check_caps_enforced(results: dict) -> None:
    """Every learner's kernel runs its code under the class's memory and thread caps, in a
    cgroup inside the one add-learners delegated to that learner."""
    for name in LEARNERS:
        cell = next(c for c in results[name]["cells"] if "limits-probe" in c.tags)
        # `:limits` answers with its result (text/plain), not a stream.
        text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        for what in ("memory: 2 GiB", "threads: 12000 threads"):
            line = next((l for l in text.splitlines() if l.startswith(what)), "")
            assert "enforced by" in line and f"/rustmeter-class/{name}/" in line, \
                f"{name}'s kernel: {what} cap not enforced in the learner's cgroup:\n{text}"


def check_split_names_the_work(sampler: MachineSampler, cpu_used: dict[str, dict[str, float]]) -> None:
    """The memory and CPU split finds each learner's server, kernel and compilers, and
    leaves little to "other" (a process it cannot name)."""
    for name in LEARNERS:
        memory, cpu = sampler.split_at_peak[name], cpu_used[name]
        assert all(memory.get(role, 0) > 0 for role in ("server", "kernel")), f"{name}'s memory split: {memory}"
        assert cpu["kernel"] > 0 and cpu["compilers"] > 0, f"{name}'s CPU split: {cpu}"
        assert memory.get("other", 0) <= 0.1 * sum(memory.values()) and cpu["other"] <= 0.1 * sum(cpu.values()), \
            f"{name}: more than a tenth of the memory or CPU in processes the split cannot name: {memory} {cpu}"


def check_shared_cache_hits() -> dict[str, list[str]]:
    """No learner compiled a crate whose entry the shared tier holds; tokio came from it.
    Returns what each learner did compile (rustmeter's per-user shim crates)."""
    shared_keys = {p.name[:12] for p in (CLASS_DIR / "cache" / "entries").iterdir()}
    compiled: dict[str, list[str]] = {}
    for name in LEARNERS:
        log = Path(pwd.getpwnam(name).pw_dir) / ".cache" / "rustmeter" / "deps" / "hits.log"
        assert log.is_file(), f"{name} has no dependency-cache record {log}"
        lines = [line.split() for line in log.read_text().splitlines()]
        recompiled = [f[1] for f in lines if f[3] == "miss" and f[2] in shared_keys]
        assert not recompiled, f"{name} compiled crates the shared cache holds: {recompiled}"
        assert any(f[1] == "tokio" and f[3] == "hit" and str(CLASS_DIR / "cache") in f[5:] for f in lines), \
            f"{name}'s tokio did not come from the shared cache:\n{log.read_text()}"
        compiled[name] = sorted({f[1] for f in lines if f[3] == "miss"})
    return compiled


def check_isolation(hub: Hub, tokens: dict, results: dict) -> None:
    a, b = LEARNERS[0], LEARNERS[1]
    b_kernel = results[b]["kernel"].kernel_id
    refused = requests.get(f"{hub.url}/user/{b}/api/kernels", headers={"Authorization": f"token {tokens[a]}"},
                           timeout=60, allow_redirects=False)
    assert refused.status_code == 403, f"{a}'s token on {b}'s server: {refused.status_code}, expected 403"
    with pytest.raises(websocket.WebSocketBadStatusException) as ws_refused:
        channels(f"{hub.url}/user/{b}", b_kernel, {"Authorization": f"token {tokens[a]}"})
    assert ws_refused.value.status_code == 403, f"{a}'s token on {b}'s kernel websocket: {ws_refused.value}"

    b_user = pwd.getpwnam(b)
    home = Path(b_user.pw_dir)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700, f"{home} is {oct(home.stat().st_mode)}, must be 0700"
    connection = home / ".local" / "share" / "jupyter" / "runtime" / f"kernel-{b_kernel}.json"
    assert connection.is_file(), f"{b}'s kernel connection file is not where expected: {connection}"
    transport = json.loads(connection.read_text())["transport"]
    assert transport == "ipc", f"{b}'s kernel was started with transport {transport}, expected ipc in class mode"
    cache = home / ".cache" / "rustmeter"
    kernel_dir = cache / "run"  # the kernels' scratch folders
    deps_tier = cache / "deps"  # B's dependency cache tier
    for folder in (kernel_dir, deps_tier):
        assert folder.is_dir(), f"{b}'s folder is not where expected: {folder}"
    for target in [home, connection, kernel_dir, deps_tier, *kernel_dir.iterdir()]:
        denied = run_as(a, "cat" if target.is_file() else "ls", str(target))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, \
            f"{a} could read {target}: {denied.stdout[:200]}"
    check_unsigned_request_ignored(a, connection)
    check_planted_config_ignored(a, results[b]["kernel"])
    # The kernel runs as B: the process whose argv names B's connection file is B's.
    owners = {p.stat().st_uid for p in Path("/proc").iterdir() if p.name.isdigit() and owns_file(p, connection)}
    assert owners == {b_user.pw_uid}, f"{b}'s kernel runs as uids {owners}, expected {b_user.pw_uid}"


def check_planted_config_ignored(a: str, b_kernel: LearnerKernel) -> None:
    """A plants a cargo configuration in /tmp, where kernels built before: B's next cell
    build neither sees its `[env]` nor runs its linker. Removed at once, as it would reach
    any build under /tmp."""
    planted = Path("/tmp/.cargo")
    assert not planted.exists(), f"{planted} exists before the test plants it: remove it"
    ran = Path("/tmp") / f"rustmeter-planted-ran-{os.getpid()}"
    host = next(l.split()[1] for l in subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.splitlines()
                if l.startswith("host:"))
    plant = (
        f"set -e; touch {ran}; chmod 666 {ran}; mkdir {planted}; "
        f"printf '#!/bin/sh\\necho \"uid $(id -u)\" >> {ran}\\nexec cc \"$@\"\\n' > {planted}/linker.sh; chmod 755 {planted}/linker.sh; "
        f"printf '[target.{host}]\\nlinker = \"{planted}/linker.sh\"\\n[env]\\nRUSTMETER_PLANTED = \"by {a}\"\\n' > {planted}/config.toml"
    )
    b_uid = pwd.getpwnam(b_kernel.user).pw_uid
    try:
        made = run_as(a, "sh", "-c", plant)
        assert made.returncode == 0, made.stderr
        cell = b_kernel.execute(CellRun('println!("planted: {:?}", option_env!("RUSTMETER_PLANTED"));', []), 300)
        shutil.rmtree(planted, ignore_errors=True)
        said = "".join(o.get("text", "") for o in cell.outputs)
        assert cell.status == "ok" and "planted: None" in said, f"{a}'s planted config reached B: {cell.outputs}"
        # (Another build under /tmp on this machine may have run it meanwhile: only B's counts.)
        assert f"uid {b_uid}\n" not in ran.read_text(), f"{a}'s planted linker ran in B's build"
    finally:
        shutil.rmtree(planted, ignore_errors=True)
        ran.unlink(missing_ok=True)


# Run as learner A with B's kernel ports (not its key, which A cannot read): a request
# signed with a guessed key must get no reply.
FORGED_REQUEST = """
import json, sys, uuid
from jupyter_client import BlockingKernelClient
info = json.loads(sys.argv[1])
client = BlockingKernelClient(key=uuid.uuid4().hex.encode(), **info)
client.start_channels()
client.execute('println!("{}", std::env::var("USER").unwrap_or_default());')
try:
    reply = client.get_shell_msg(timeout=8)
    print("REPLIED", reply["content"])
except Exception:
    print("NO REPLY")
client.stop_channels()
"""


def check_unsigned_request_ignored(a: str, connection: Path) -> None:
    info = json.loads(connection.read_text())
    ports = {k: info[k] for k in ("ip", "transport", "shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}
    python = CLASS_DIR / "venv" / "bin" / "python"
    forged = run_as(a, str(python), "-c", FORGED_REQUEST, json.dumps(ports))
    assert forged.returncode == 0 and "NO REPLY" in forged.stdout, \
        f"{a} reached another learner's kernel with a forged key: {forged.stdout} {forged.stderr[-500:]}"


def owns_file(proc: Path, connection: Path) -> bool:
    try:
        return str(connection.name) in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def figures(setup_s: float, total_s: float, results: dict, sampler: MachineSampler, idle_used: int,
            cpu_used: dict[str, dict[str, float]], compiled: dict, n_cells: int, warm: dict) -> str:
    """The figures, and the sizing table from the learners' own share: their processes'
    peak memory (PSS) and CPU time. The machine-wide figures include whatever else runs."""
    n = len(LEARNERS)
    gb, mb = 2**30, 2**20
    peak_used = max(sampler.used_bytes)
    busy = sampler.busy_cores or [0.0]
    peak_pss = {name: max(sampler.learner_pss[name], default=0) for name in LEARNERS}
    class_peak = max((sum(v) for v in zip(*sampler.learner_pss.values())), default=0)
    ram_per_learner = max(peak_pss.values()) / gb
    cpu_total = {name: sum(cpu_used[name].values()) for name in LEARNERS}
    cpu_per_learner = max(cpu_total.values())
    cores = os.cpu_count()
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / gb
    lines = [
        f"class hub figures ({n} learners, {n_cells} cells of {NOTEBOOK.name} each, started together;"
        f" machine: {cores} cores, {total_gb:.0f} GB RAM)",
        f"  setup (class-hub.sh setup, warm): {setup_s:.0f} s",
        f"  warm kernel per learner from login: all {n} warm {warm['seconds']:.0f} s after their servers were up;"
        " memory held per logged-in learner before opening anything (server + warm kernel, PSS): "
        + ", ".join(f"{warm['held'][name] / mb:.0f}" for name in LEARNERS) + " MB",
        "  launch → first result of the first notebook (a `let`), per learner: "
        + ", ".join(f"{name} {results[name]['first_result_s']:.2f} s" for name in LEARNERS),
        f"  all {n} finished in {total_s:.0f} s; wall time per learner: "
        + ", ".join(f"{name} {results[name]['wall_s']:.0f} s" for name in LEARNERS),
        f"  machine memory used: {idle_used / gb:.2f} GB before the servers started, peak {peak_used / gb:.2f} GB",
        f"  machine CPU: peak {max(busy):.2f} cores busy, average {sum(busy) / len(busy):.2f} of {cores}",
        f"  learners' processes (server, kernel, compilers, demo server): peak memory together"
        f" {class_peak / gb:.2f} GB; per learner (PSS) "
        + ", ".join(f"{peak_pss[name] / mb:.0f}" for name in LEARNERS) + " MB",
        f"  where each learner's peak memory was (PSS at that moment, MB; {', '.join(ROLES)}): "
        + "; ".join(f"{name} " + " + ".join(f"{sampler.split_at_peak[name].get(role, 0) / mb:.0f}" for role in ROLES)
                    for name in LEARNERS),
        "  CPU time per learner: " + ", ".join(f"{cpu_total[name]:.1f}" for name in LEARNERS) + " s",
        f"  where it went (s; {', '.join(ROLES)}): "
        + "; ".join(f"{name} " + " + ".join(f"{cpu_used[name][role]:.1f}" for role in ROLES) for name in LEARNERS),
        f"  compiled by every learner (rustmeter's per-user shim crates; the rest came from the shared cache):"
        f" {compiled[LEARNERS[0]]}",
        "",
        f"sizing: RAM = {idle_used / gb:.1f} GB (this machine before the class) + learners × {ram_per_learner:.2f} GB"
        f" (the largest learner's peak), rounded up; cores = learners × {cpu_per_learner:.0f} CPU-seconds"
        " (the largest learner's) / 60 s, i.e. when everyone runs these cells at the same moment"
        " they all finish in about a minute:",
        "",
        "| learners | RAM | cores |",
        "|---:|---:|---:|",
    ]
    for learners in (n, 10, 20, 30, 50):
        ram = idle_used / gb + learners * ram_per_learner
        lines.append(f"| {learners} | {math.ceil(ram)} GB | {max(1, math.ceil(learners * cpu_per_learner / 60))} |")
    return "\n".join(lines)
