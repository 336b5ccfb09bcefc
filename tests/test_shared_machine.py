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
from kernel_helpers import kernel_unavailable_reason, launched_kernel, run_cell, stream_text

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
    seconds = 8.0
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

    from kernel_helpers import kernel_binary

    connection, _ = write_connection_file(fname=str(tmp_path / "k.json"), ip="127.0.0.1")
    env = {**os.environ, "RUSTMETER_ALLOW_UIDS": "root,no-such-account-here"}
    done = subprocess.run(
        [kernel_binary(), "kernel", "--connection-file", connection],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "RUSTMETER_ALLOW_UIDS" in done.stderr and "no-such-account-here" in done.stderr, done.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
