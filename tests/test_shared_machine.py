"""Another local account attacks a kernel, as it could on a shared class machine.

Run as root, which creates the second account (`rmforeign`). Each attack is one test:
the other account's ZeroMQ peers on a kernel's TCP ports, ... Every attack is also run
by an account that is allowed, to show the attack itself works and what stops it is the
kernel's check.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import system_users
from kernel_helpers import (
    kernel_binary, kernel_unavailable_reason, launched_kernel, run_cell, stream_text, wait_until_answering)

FOREIGN = "rmforeign"
HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    (kernel_unavailable_reason() or system_users.root_reason()) is not None,
    reason=str(kernel_unavailable_reason() or system_users.root_reason()),
)


@pytest.fixture(scope="module")
def foreign():
    user = system_users.make_user(FOREIGN)
    try:
        yield user
    finally:
        subprocess.run(["pkill", "-KILL", "-u", FOREIGN], capture_output=True)
        system_users.remove_user(FOREIGN)


@pytest.fixture(scope="module")
def client_script():
    """foreign_client.py where any account can run it (with the system's python3)."""
    folder = Path(tempfile.mkdtemp(prefix="rm-foreign-"))
    folder.chmod(0o755)
    script = folder / "foreign_client.py"
    shutil.copy(HERE / "foreign_client.py", script)
    script.chmod(0o755)
    yield script
    shutil.rmtree(folder, ignore_errors=True)


def system_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no system python3 that another account can run")


def start_peer(script: Path, user, mode: str, port: int, seconds: float, key: str = "") -> subprocess.Popen:
    """foreign_client.py as `user` (None: as this test's own account)."""
    args = [system_python(), str(script), mode, "127.0.0.1", str(port), str(seconds)]
    if key:
        args.append(key)
    as_user = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd="/", **as_user)


def peer_result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=60)
    return json.loads(out)


@pytest.fixture()
def kernel_with_log(tmp_path):
    log = tmp_path / "kernel.log"
    with open(log, "wb") as stderr, launched_kernel(stderr=stderr) as (process, client):
        yield client, log


def test_another_account_reads_nothing_on_iopub_and_gets_no_reply_on_shell(
    foreign, client_script, kernel_with_log
):
    client, log = kernel_with_log
    info = client.get_connection_info()
    secret = f"secret-{os.getpid()}-{time.time_ns()}"
    # Compiled once before the peers start, so the secret's cell is quick to build (a first
    # build took 10 s on a loaded machine) and lands while they listen.
    reply, _ = run_cell(client, "let warm = 1;")
    assert reply["content"]["status"] == "ok"
    seconds = 12.0
    peers = {
        (who, mode): start_peer(
            client_script,
            foreign if who == "foreign" else None,
            mode,
            info["iopub_port"] if mode == "sub" else info["shell_port"],
            seconds,
            key=info["key"].decode() if isinstance(info["key"], bytes) else info["key"],
        )
        for who in ("foreign", "own")
        for mode in ("sub", "dealer")
    }
    time.sleep(2.5)  # every peer connected and subscribed
    reply, msgs = run_cell(client, f'let password = "{secret}"; println!("{{}}", password);')
    assert reply["content"]["status"] == "ok", msgs
    assert secret in stream_text(msgs)
    results = {k: peer_result(p) for k, p in peers.items()}

    # The attacks work for an allowed account (root runs this test)...
    assert results[("own", "sub")]["handshakes"] >= 1, results[("own", "sub")]
    assert secret in results[("own", "sub")]["text"], "the own-account SUB saw no output"
    assert "kernel_info_reply" in results[("own", "dealer")]["text"], results[("own", "dealer")]
    # ... and get nothing for another account, which did connect (and reconnect).
    for mode in ("sub", "dealer"):
        got = results[("foreign", mode)]
        assert got["connections"] >= 2, got
        assert got["handshakes"] == 0 and got["received"] == 0, got
    assert secret not in results[("foreign", "sub")]["text"]

    # The kernel still serves its own client, and said so once, not per reconnect.
    reply, msgs = run_cell(client, "40 + 2")
    assert reply["content"]["status"] == "ok"
    refusals = [line for line in log.read_text().splitlines() if "refused local connections" in line]
    assert len(refusals) == 1, refusals
    assert f"uid {foreign.uid}" in refusals[0] and "RUSTMETER_ALLOW_UIDS" in refusals[0], refusals


def test_an_allowed_account_connects(foreign, client_script, tmp_path):
    log = tmp_path / "kernel.log"
    env = {**os.environ, "RUSTMETER_ALLOW_UIDS": f"root,{FOREIGN}"}
    with open(log, "wb") as stderr, launched_kernel(env=env, stderr=stderr) as (_, client):
        info = client.get_connection_info()
        key = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        peer = start_peer(client_script, foreign, "dealer", info["shell_port"], 4.0, key=key)
        got = peer_result(peer)
    assert "kernel_info_reply" in got["text"], got
    assert "refused" not in log.read_text()


def test_a_bad_allow_list_stops_the_kernel_with_its_name(tmp_path):
    from jupyter_client.connect import write_connection_file

    connection, _ = write_connection_file(fname=str(tmp_path / "k.json"), ip="127.0.0.1")
    env = {**os.environ, "RUSTMETER_ALLOW_UIDS": "root,no-such-account-here"}
    done = subprocess.run(
        [kernel_binary(), "kernel", "--connection-file", connection],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "RUSTMETER_ALLOW_UIDS" in done.stderr and "no-such-account-here" in done.stderr, done.stderr


# ---------------------------------------------------------------------------- planted folders
PLANTED_CELL = 'println!("planted: {:?} {}", option_env!("RUSTMETER_PLANTED"), cfg!(rustmeter_planted));'


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("host:"))


def as_account(user, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user.name, "--", *args], check=True, capture_output=True, **kwargs)


@pytest.fixture()
def shared_tmp(foreign):
    """A folder like /tmp (root's, mode 1777) in which `foreign` planted a cargo
    configuration: a linker and a rustc wrapper that append to `ran` and then do their job,
    an `[env]` value, `rustflags` and an alias. Not the machine's own /tmp: the planted
    configuration would reach every build under it."""
    folder = Path(tempfile.mkdtemp(prefix="rm-sharedtmp-"))
    folder.chmod(0o1777)
    ran = folder / "ran"
    script = f'#!/bin/sh\necho "$(id -u) $0" >> {ran}\n'
    config = (
        f"[target.{host_triple()}]\nlinker = \"{folder}/linker.sh\"\n"
        f"[env]\nRUSTMETER_PLANTED = \"planted\"\n"
        f"[build]\nrustc-wrapper = \"{folder}/wrapper.sh\"\n"
        'rustflags = ["--cfg", "rustmeter_planted"]\n'
        '[alias]\nb = "run --bin planted"\nbuild-planted = "build"\n'
    )
    as_account(foreign, "sh", "-c", f"cd {folder} && touch ran && chmod 666 ran && mkdir .cargo")
    plant(foreign, folder / "linker.sh", script + 'exec cc "$@"\n', executable=True)
    plant(foreign, folder / "wrapper.sh", script + 'exec "$@"\n', executable=True)
    plant(foreign, folder / ".cargo" / "config.toml", config)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def plant(user, path: Path, text: str, executable: bool = False) -> None:
    """`user` writes `text` to `path`."""
    as_account(user, "sh", "-c", f"cat > {path}" + (f" && chmod 755 {path}" if executable else ""), input=text.encode())


def planted_runs(folder: Path) -> str:
    return (folder / "ran").read_text()


def test_a_planted_config_works_on_a_build_under_it(shared_tmp):
    """The attack is real: cargo building in a folder under the shared one obeys it."""
    probe = shared_tmp / "probe"
    subprocess.run(["cargo", "new", "--quiet", "--name", "probe", str(probe)], check=True)
    built = subprocess.run(
        ["cargo", "build", "--quiet", "--offline"], cwd=probe, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    runs = planted_runs(shared_tmp)
    assert "wrapper.sh" in runs and "linker.sh" in runs, runs


def test_a_planted_config_in_tmpdir_does_not_reach_a_root_kernel(shared_tmp, tmp_path):
    env = {**os.environ, "TMPDIR": str(shared_tmp)}
    for name in ("RUSTMETER_CACHE_DIR", "RUSTMETER_RUNTIME_DIR"):
        env.pop(name, None)
    with launched_kernel(env=env) as (_, client):
        reply, msgs = run_cell(client, PLANTED_CELL, timeout=300)
    assert reply["content"]["status"] == "ok", msgs
    assert "planted: None false" in stream_text(msgs), stream_text(msgs)
    assert planted_runs(shared_tmp) == "", "the planted linker or wrapper ran"


def test_a_planted_config_in_tmpdir_does_not_reach_a_learners_kernel(foreign, shared_tmp):
    learner = system_users.make_user("rmvictim")
    workdir = Path(tempfile.mkdtemp(prefix="rm-victim-"))
    workdir.chmod(0o755)
    process = client = None
    try:
        process, client = system_users.start_kernel_as(
            learner, kernel_binary(), {"TMPDIR": str(shared_tmp)}, workdir
        )
        wait_until_answering(process, client, 120)
        reply, msgs = run_cell(client, PLANTED_CELL, timeout=300)
        assert reply["content"]["status"] == "ok", msgs
        assert "planted: None false" in stream_text(msgs), stream_text(msgs)
        assert planted_runs(shared_tmp) == "", "the planted linker or wrapper ran"
    finally:
        if client is not None:
            client.shutdown()
            client.stop_channels()
        if process is not None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["pkill", "-KILL", "-u", "rmvictim"], capture_output=True)
        system_users.remove_user("rmvictim")
        shutil.rmtree(workdir, ignore_errors=True)


def test_precreated_and_symlinked_folders_are_refused_and_the_first_cell_says_so(foreign, shared_tmp):
    """The other account made the folders the kernel is configured to use before it
    started: the runtime folder open to all (0777) with a cargo configuration inside, the
    cache folder a symlink to a folder of its own."""
    runtime = shared_tmp / f"rustmeter-{os.geteuid()}"
    cache = shared_tmp / "rustmeter-cache"
    theirs = shared_tmp / "theirs"
    as_account(
        foreign, "sh", "-c",
        f"set -e; mkdir -p {runtime}/.cargo {theirs}/.cargo; chmod 777 {runtime}; "
        f"cp {shared_tmp}/.cargo/config.toml {runtime}/.cargo/; cp {shared_tmp}/.cargo/config.toml {theirs}/.cargo/; "
        f"ln -s {theirs} {cache}",
    )
    env = {**os.environ, "RUSTMETER_RUNTIME_DIR": str(runtime), "RUSTMETER_CACHE_DIR": str(cache)}
    with launched_kernel(env=env) as (_, client):
        reply, msgs = run_cell(client, PLANTED_CELL, timeout=300)
        second_reply, second = run_cell(client, "40 + 2")
    assert reply["content"]["status"] == "ok", msgs
    said = stream_text(msgs) + stream_text(msgs, "stderr")
    assert "planted: None false" in said, said
    for folder in (runtime, cache):
        assert f"refused" in said and str(folder) in said, said
    assert "refused" not in stream_text(second) + stream_text(second, "stderr"), "said once, in the first cell"
    assert planted_runs(shared_tmp) == "", "the planted linker or wrapper ran"
    assert not any(theirs.iterdir()) or sorted(p.name for p in theirs.iterdir()) == [".cargo"], list(theirs.iterdir())
    assert sorted(p.name for p in runtime.iterdir()) == [".cargo"], "the kernel wrote in the refused folder"


def test_with_no_safe_folder_the_kernel_does_not_start_and_says_why(shared_tmp):
    """Every candidate under the shared folder: rustmeter never falls back to one."""
    from jupyter_client.connect import write_connection_file

    connection, _ = write_connection_file(fname=str(shared_tmp / "k.json"), ip="127.0.0.1")
    env = {**os.environ, "HOME": str(shared_tmp / "home"), "RUSTMETER_CACHE_DIR": str(shared_tmp / "cache")}
    for name in ("RUSTMETER_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        env.pop(name, None)
    done = subprocess.run([kernel_binary(), "kernel", "--connection-file", connection],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stderr
    assert "no folder is safe to build in" in done.stderr and "RUSTMETER_CACHE_DIR" in done.stderr, done.stderr
    assert not (shared_tmp / "cache").exists() and not (shared_tmp / "home").exists()
    assert planted_runs(shared_tmp) == ""


# ---------------------------------------------------------------------------- warm spares
def handover_attempt(script: Path, socket_path: Path, connection: str, how: list[str]) -> dict:
    done = subprocess.run(
        [*how, system_python(), str(script), str(socket_path), connection],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_another_account_cannot_have_its_launch_served_by_a_spare(foreign, rustmeter_installed, tmp_path):
    from jupyter_client.connect import write_connection_file

    from kernel_helpers import pid_alive
    from test_spare import Spares

    shared = Path(tempfile.mkdtemp(prefix="rm-handover-"))
    shared.chmod(0o755)
    script = shared / "foreign_handover.py"
    shutil.copy(HERE / "foreign_handover.py", script)
    script.chmod(0o755)
    # The other account's own, valid connection file: only the uid check can stop it.
    connection, _ = write_connection_file(fname=str(shared / "theirs.json"), ip="127.0.0.1")
    os.chown(connection, foreign.uid, foreign.gid)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    spares = Spares(tmp_path / "runtime", folder)
    as_foreign = ["runuser", "-u", FOREIGN, "--"]
    # The same account with the right to pass any folder's permissions, as if the spare's
    # folder were open to it: what answers is the spare's own SO_PEERCRED check.
    past_folders = ["setpriv", f"--reuid={foreign.uid}", f"--regid={foreign.gid}", "--clear-groups",
                    "--inh-caps=+dac_override", "--ambient-caps=+dac_override", "--"]
    try:
        spare = spares.seed()
        socket_path = next(spares.dir.glob("*.sock"))

        blocked = handover_attempt(script, socket_path, connection, as_foreign)
        assert not blocked["connected"] and "Permission" in blocked["error"], blocked

        refused = handover_attempt(script, socket_path, connection, past_folders)
        assert refused["connected"] and refused["reply"] == "", refused
        assert socket_path.exists() and pid_alive(spare), "the spare stopped waiting for its own account"

        # The same request from the spare's own account is read and answered (an error:
        # the file does not exist), so the silence above is the uid check's.
        own = handover_attempt(script, socket_path, str(shared / "missing.json"), [])
        assert own["reply"].startswith("error") and "connection file" in own["reply"], own
        assert socket_path.exists() and pid_alive(spare)
    finally:
        spares.stop_all()
        shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
