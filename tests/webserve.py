"""`ajs3 web` started by a test: a real process on a free port of 127.0.0.1 (port 0,
read back from its first line), and a small HTTP client for it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lhost import LogicalHost, cli_env
from webspec import check_answer

OPERATOR = "op-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
SETTINGS = f"""
web:
  tokens:
    - {{name: alice, token: {OPERATOR}, role: operator}}
    - {{name: wally, token: {VIEWER}, role: viewer}}
"""


class WebConsole:
    def __init__(self, host: LogicalHost, env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "ajs3.cli.main", "web", *host.opts, "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            argv,
            env={**cli_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(https?)://127\.0\.0\.1:(\d+)", line)
        if found is None:
            self.proc.kill()
            raise AssertionError(f"ajs3 web did not start: {line!r} {self.proc.stderr.read()}")
        self.url = f"{found.group(1)}://127.0.0.1:{found.group(2)}"
        self.port = int(found.group(2))

    def request(
        self,
        method: str,
        path: str,
        token: str | None = OPERATOR,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        """(status, decoded body, content type)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            status, raw, ctype = exc.code, exc.read(), exc.headers["Content-Type"]
        if ctype and ctype.startswith("application/json"):
            return status, json.loads(raw), ctype
        return status, raw.decode(), ctype

    def get(self, path: str, token: str | None = OPERATOR) -> tuple[int, Any]:
        status, body, _ = self.request("GET", path, token)
        return status, body

    def post(self, path: str, body: Any, token: str | None = OPERATOR) -> tuple[int, Any]:
        status, answer, _ = self.request("POST", path, token, body)
        return status, answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@contextmanager
def serving(
    make_lhost: Callable[[str], LogicalHost], name: str, defs: str
) -> Iterator[tuple[LogicalHost, WebConsole]]:
    """A started logical host ``name`` with the tokens of SETTINGS and ``defs``
    applied, and its console; the console stops after."""
    host = make_lhost(name)
    host.write_settings(SETTINGS)
    host.start()
    host.define(defs)
    console = WebConsole(host)
    try:
        yield host, console
    finally:
        console.stop()


def checked(
    console: WebConsole, method: str, path: str, token: str | None = OPERATOR, body: Any = None
) -> tuple[int, Any]:
    """(status, body) of a request, the answer checked against the OpenAPI document."""
    status, answer, ctype = console.request(method, path, token, body)
    check_answer(method, path, status, answer, ctype)
    return status, answer


def repo_file(*parts: str) -> Path:
    return Path(__file__).resolve().parents[1].joinpath(*parts)
