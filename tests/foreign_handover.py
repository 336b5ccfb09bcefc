"""Asks a warm spare to serve a launch, as a launcher does, from whichever account runs it.

    python3 foreign_handover.py SOCKET CONNECTION_FILE

Connects to the spare's Unix socket, sends the hand-over request (one JSON line with the
connection file and a pid) with this process's stdin, stdout and stderr as SCM_RIGHTS,
and prints one JSON line: {"connected": bool, "error": str, "reply": str}; `reply` is
the spare's answer line ("ok <pid>" / "error <why>"), empty when it closed without one.
Standard library only, so any account can run it with the system's python3.
"""
from __future__ import annotations

import json
import os
import socket
import sys


def main() -> None:
    path, connection_file = sys.argv[1], sys.argv[2]
    result = {"connected": False, "error": "", "reply": ""}
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    link.settimeout(15)
    try:
        # By name from its folder: a test's folders are deeper than AF_UNIX's 107 bytes.
        os.chdir(os.path.dirname(path))
        link.connect(os.path.basename(path))
        result["connected"] = True
        request = json.dumps({"connection_file": connection_file, "launcher_pid": os.getpid()}) + "\n"
        socket.send_fds(link, [request.encode()], [0, 1, 2])
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = link.recv(4096)
            if not chunk:
                break
            reply += chunk
        result["reply"] = reply.decode(errors="replace").strip()
    except OSError as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        link.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
