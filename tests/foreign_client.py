#!/usr/bin/env python3
"""A ZeroMQ peer written with the standard library only, run by tests as *another local
account* (which has no access to the project's Python environment) against a kernel's
TCP port: it speaks ZMTP 3.0 with the NULL mechanism, as a SUB (subscribed to everything)
or as a DEALER that sends one signed `kernel_info_request`, reconnecting like zeromq does
whenever the connection drops, and prints what it got as JSON.

    foreign_client.py sub    HOST PORT SECONDS
    foreign_client.py dealer HOST PORT SECONDS KEY

Output: {"connections": n, "handshakes": n, "received": bytes after handshakes,
         "text": everything received after the handshakes, latin-1}
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
import sys
import time
import uuid

GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def frame(body: bytes, more: bool = False, command: bool = False) -> bytes:
    flags = (0x01 if more else 0) | (0x04 if command else 0)
    if len(body) > 255:
        return bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def ready(socket_type: bytes) -> bytes:
    name = b"Socket-Type"
    return frame(b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type, command=True)


def kernel_info_request(key: bytes) -> bytes:
    header = json.dumps({
        "msg_id": uuid.uuid4().hex, "session": uuid.uuid4().hex, "username": "other",
        "date": "2026-01-01T00:00:00Z", "msg_type": "kernel_info_request", "version": "5.3",
    }).encode()
    parts = [header, b"{}", b"{}", b"{}"]
    signature = hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode()
    frames = [b"", b"<IDS|MSG>", signature, *parts]
    return b"".join(frame(f, more=i < len(frames) - 1) for i, f in enumerate(frames))


def read_exactly(conn: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def session(host: str, port: int, mode: str, key: bytes, deadline: float, out: dict) -> None:
    with socket.create_connection((host, port), timeout=2) as conn:
        out["connections"] += 1
        conn.sendall(GREETING)
        read_exactly(conn, 64, deadline)
        conn.sendall(ready(b"SUB" if mode == "sub" else b"DEALER"))
        out["handshakes"] += 1
        conn.sendall(frame(b"\x01") if mode == "sub" else kernel_info_request(key))
        while time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                return
            out["received"] += len(chunk)
            out["text"] += chunk.decode("latin-1")


def main() -> int:
    mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    key = sys.argv[5].encode() if len(sys.argv) > 5 else b""
    out = {"connections": 0, "handshakes": 0, "received": 0, "text": ""}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            session(host, port, mode, key, deadline, out)
        except (OSError, ConnectionError):
            pass
        time.sleep(0.1)  # zeromq's default reconnect interval
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
