"""The control socket protocol: one JSON line in, one JSON line out, per connection."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code, NotRunningError, ServiceError

MAX_REQUEST = 64 * 1024 * 1024


def request(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a daemon and return its answer, or raise its error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunningError(
                f"logical host is not running (no answer on {path})",
                hint="start it with `ajs3 service start`",
            ) from exc
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = read_line(sock)
    except TimeoutError as exc:
        raise ServiceError(
            f"no answer from the daemon on {path} within {timeout:g} s", code=Code.CONTROL
        ) from exc
    except OSError as exc:
        raise ServiceError(f"control socket {path}: {exc}", code=Code.CONTROL) from exc
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise ServiceError(f"bad answer from the daemon: {data[:200]!r}") from exc
    if not answer.get("ok"):
        err = answer.get("error", {})
        try:
            code = Code(err.get("code", Code.INTERNAL.value))
        except ValueError:
            code = Code.INTERNAL
        raise AjsError(err.get("message", "unknown error"), code=code, hint=err.get("hint", ""))
    result: dict[str, Any] = answer.get("result", {})
    return result


def read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_REQUEST:
            break
    return b"".join(chunks)
