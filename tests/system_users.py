"""Throwaway system users for tests that need a learner who is not root.

Used by test_limits.py (cgroup caps) and reusable for JupyterHub tests: `make_user` /
`remove_user` create and delete a login, `shared_toolchain` gives every user a Rust
toolchain it can run (rustup's lives under /root, mode 0700), `delegate_cgroups` hands a
user a cgroup directory per controller, as an administrator would, and `start_kernel_as`
starts a rustmeter kernel as that user, connected through a real connection file.

All of it needs root; callers skip first with `root_reason()`.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SHARED_ROOT = Path("/opt/rustmeter-test")


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path


def root_reason() -> str | None:
    """Why users cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "creating test users needs root"
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def make_user(name: str) -> User:
    """Creates login `name` with a home directory (removing a stale one first)."""
    remove_user(name)
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def remove_user(name: str) -> None:
    """Deletes login `name` and its home, if it exists (stop its processes first)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)


def shared_toolchain() -> Path:
    """A copy of the Rust toolchain in use that every user can run; returns its bin/.

    A hard-link copy (`cp -al`, instant on the same filesystem) of rustc's sysroot: the real
    cargo and rustc, not rustup's proxies, with the std sources inside it.
    """
    sysroot = Path(
        subprocess.run(
            ["rustc", "--print", "sysroot"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    target = SHARED_ROOT / f"toolchain-{sysroot.name}"
    done = target / ".copied"
    if not done.exists():
        SHARED_ROOT.mkdir(parents=True, exist_ok=True)
        SHARED_ROOT.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging = SHARED_ROOT / f".staging-{os.getpid()}"
        subprocess.run(["cp", "-al", str(sysroot), str(staging)], check=True)
        staging.chmod(0o755)
        (staging / ".copied").touch()
        staging.rename(target)
    return target / "bin"


@dataclass
class Delegation:
    """Cgroup directories (one per controller) owned by a user, as an admin delegates them."""

    dirs: list[Path] = field(default_factory=list)

    @property
    def parent_setting(self) -> str:
        """The value for RUSTMETER_CGROUP_PARENT."""
        return ":".join(str(d) for d in self.dirs)

    def children(self) -> list[Path]:
        return [c for d in self.dirs if d.is_dir() for c in d.iterdir() if c.is_dir()]

    def remove(self) -> None:
        for child in self.children():
            try:
                child.rmdir()
            except OSError:
                pass
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def cgroup_hierarchies() -> dict[str, Path]:
    """controller -> this process's cgroup directory carrying it (v1 first, else v2)."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields = after.split()
        if len(fields) < 3:
            continue
        mount = Path(before.split()[4])
        if fields[0] == "cgroup":
            for controller in fields[2].split(","):
                v1[controller] = mount
        elif fields[0] == "cgroup2":
            v2 = mount
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    found: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        if controller in v1:
            found[controller] = v1[controller] / own.get(controller, "/").lstrip("/")
        elif v2 is not None and controller in (v2 / "cgroup.controllers").read_text().split():
            found[controller] = v2 / own.get("", "/").lstrip("/")
    return found


def delegate_cgroups(user: User, name: str) -> Delegation:
    """Makes `<own cgroup>/<name>` for memory and pids and hands it to `user` (chown -R)."""
    delegation = Delegation()
    for parent in dict.fromkeys(cgroup_hierarchies().values()):
        path = parent / name
        path.mkdir(exist_ok=True)
        delegation.dirs.append(path)
        for item in [path, *path.iterdir()]:
            os.chown(item, user.uid, user.gid)
    return delegation


def start_kernel_as(user: User, binary: str, env: dict[str, str], workdir: Path):
    """Starts `binary kernel` as `user`; returns (Popen, BlockingKernelClient).

    The kernel's stderr goes to a .log file next to its connection file in `workdir`.
    """
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    workdir.mkdir(parents=True, exist_ok=True)
    os.chown(workdir, user.uid, user.gid)
    for parent in workdir.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise PermissionError(f"{parent} is closed to other users: put {workdir} elsewhere")
    connection_file, _ = write_connection_file(
        fname=str(workdir / f"kernel-{len(list(workdir.glob('kernel-*.json')))}.json")
    )
    os.chown(connection_file, user.uid, user.gid)
    kernel_env = {
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": f"{shared_toolchain()}:/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "RUSTMETER_SPARE": "0",
        **env,
    }
    as_user = {}
    if os.geteuid() == 0:
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
    process = subprocess.Popen(
        [binary, "kernel", "--connection-file", connection_file],
        **as_user,
        env=kernel_env,
        cwd=user.home,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"{Path(connection_file).stem}.log", "wb"),
    )
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    return process, client
