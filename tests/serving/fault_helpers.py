"""Helpers for the fault tests: raw sockets, /metrics values, a server whose log dir we choose."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import orjson

from serving_helpers import ServerProcess

INFER = "/v2/models/model/infer"


def infer_body(rid: str, rows: int = 1) -> bytes:
    data = [[0.1 * (i + 1), -0.2, 0.3, 0.4] for i in range(rows)]
    tensor = {"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": data}
    return orjson.dumps({"id": rid, "inputs": [tensor]})


def metric(url: str, name: str) -> float:
    """The value of one unlabelled series on /metrics (0 if absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_for(condition, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``condition`` until truthy; returns its value (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def open_partial(port: int, *, body: bytes | None = None, declared: int = 100, path: str = INFER) -> socket.socket:
    """A socket that sent a request's headers only (``body`` None) or the headers and part of a body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if body is None:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode())
    else:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
            + body
        )
    return s


def read_response(s: socket.socket, timeout: float = 30.0) -> tuple[int | None, bytes, bool]:
    """(status, body, closed by the server) of what the server sends on a raw socket."""
    s.settimeout(timeout)
    data = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(rest) >= int(m.group(1)):
                    # the whole response is here: does the server close the connection after it?
                    s.settimeout(5)
                    try:
                        closed = s.recv(1) == b""
                    except (TimeoutError, ConnectionResetError):
                        closed = False
                    break
    except ConnectionResetError:
        closed = True
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, data.partition(b"\r\n\r\n")[2], closed


def server_with_log_dir(project: Path, log_dir: Path, overrides: list[str], name: str) -> ServerProcess:
    srv = ServerProcess(project, overrides, name=name)
    srv.args = [a if not a.startswith("server.log_dir=") else f"server.log_dir={log_dir}" for a in srv.args]
    srv.log_dir = log_dir
    return srv
