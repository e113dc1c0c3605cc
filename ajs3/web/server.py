"""The HTTP side of `ajs3 web`: the standard library's ThreadingHTTPServer, TLS by the
ssl module when the settings give a certificate and key.

The standard library is enough here: a few JSON routes, a static page, one event
stream per open page, a text scrape; no templating, no sessions. Each request gets a
thread; a client that sends nothing for :data:`IDLE` seconds is dropped, and a body
larger than :data:`~ajs3.web.api.MAX_BODY` is refused before it is read.
"""

from __future__ import annotations

import json
import mimetypes
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ajs3.errors import AjsError, Code
from ajs3.service.paths import Paths
from ajs3.web import api, events, metrics
from ajs3.web.auth import Gate, Identity, WebRole
from ajs3.web.backend import Backend
from ajs3.web_settings import WebSettings, check_listen

#: Seconds a connection may stay silent before it is closed.
IDLE = 30.0
#: The console's static files (HTML, JS, CSS): public, they hold no data.
CONSOLE = Path(__file__).with_name("console")
#: Connections served at once (one thread each; an open page holds one for its event
#: stream); one beyond is closed at once, so a flood costs no more than this many.
MAX_CONNECTIONS = 128


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        gate: Gate,
        lhost: str,
        settings: WebSettings,
    ) -> None:
        self.backend = backend
        self.gate = gate
        self.lhost = lhost
        self.settings = settings
        self.feed = events.Feed(backend)
        self.count_lock = threading.Lock()
        self.serving = 0
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.count_lock:
            full = self.serving >= MAX_CONNECTIONS
            if not full:
                self.serving += 1
        if full:
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.count_lock:
                self.serving -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, no traceback: a client that spoke plain HTTP to the TLS port, or
        left in the middle of an answer, is not the console's fault."""
        exc = sys.exc_info()[1]
        sys.stderr.write(f"ajs3 web: {client_address[0]}: {type(exc).__name__}: {exc}\n")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host!s}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    timeout = IDLE
    protocol_version = "HTTP/1.1"
    server_version = "ajs3-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"ajs3 web: {self.address_string()} {format % args}\n")

    # -- the methods -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        who = self.server.gate.identify(self.headers)
        if path == "/metrics":
            self._metrics(who)
            return
        if path == api.PREFIX + "/events":
            if who.role < WebRole.VIEWER:
                self._json(api.error_answer(api.unauthorized()))
                return
            self._events()
            return
        if path.startswith(api.PREFIX + "/"):
            body = self._body()
            if body is None:
                return
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            req = api.Request(method, path[len(api.PREFIX) :], query, body, who)
            self._json(api.dispatch(self.server.backend, req))
            return
        self._static(path)

    # -- the answers -------------------------------------------------------------------

    def _body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit() or int(length_text) > api.MAX_BODY:
            err = AjsError(
                f"a body of at most {api.MAX_BODY} bytes, with its Content-Length",
                code=Code.WEB_BAD_REQUEST,
            )
            self.close_connection = True
            self._json(api.Answer(413, {"error": err.to_dict()}))
            return None
        return self.rfile.read(int(length_text)) if int(length_text) else b""

    def _headers(self, status: int, ctype: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-ancestors 'none'",
        )
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="ajs3"')
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _json(self, answer: api.Answer) -> None:
        data = answer.raw
        if data is None:
            data = json.dumps(answer.body, default=str).encode()
        self._headers(answer.status, answer.ctype, len(data))
        self.wfile.write(data)

    def _metrics(self, who: Identity) -> None:
        if who.role < WebRole.VIEWER and not self.server.settings.metrics_open:
            self._json(api.error_answer(api.unauthorized()))
            return
        data = metrics.exposition(self.server.backend, self.server.lhost)
        self._headers(200, metrics.CONTENT_TYPE, len(data))
        self.wfile.write(data)

    def _events(self) -> None:
        """Server-sent events: ``change`` whenever what the console shows changed."""
        self.close_connection = True
        self._headers(200, "text/event-stream", None)
        try:
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            for message in self.server.feed.follow():
                self.wfile.write(message)
                self.wfile.flush()
        except (OSError, ValueError):
            return  # the page went away

    def _static(self, path: str) -> None:
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        target = (CONSOLE / name).resolve()
        if CONSOLE.resolve() not in target.parents or not target.is_file():
            err = AjsError(f"no page {path[:200]}", code=Code.WEB_BAD_REQUEST)
            self._json(api.Answer(404, {"error": err.to_dict()}))
            return
        data = target.read_bytes()
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._headers(200, ctype, len(data))
        self.wfile.write(data)


def make_server(
    listen: str, backend: Backend, gate: Gate, lhost: str, settings: WebSettings
) -> WebServer:
    """A server bound to ``listen`` (HOST:PORT; port 0: any free one), TLS if the
    settings give a certificate; AJS3-E318 when it cannot be."""
    host, port = check_listen(listen, "--listen")
    try:
        server = WebServer((host, port), backend, gate, lhost, settings)
    except OSError as exc:
        raise AjsError(
            f"cannot listen on {listen}: {exc.strerror or exc}",
            code=Code.WEB_START,
            hint="choose another --listen HOST:PORT, or stop what listens there",
        ) from exc
    if settings.tls_cert is not None and settings.tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise AjsError(
                f"cannot use tls_cert {settings.tls_cert} and tls_key {settings.tls_key}: {exc}",
                code=Code.WEB_START,
                hint="give a PEM certificate and its key, readable by this user",
            ) from exc
        # the handshake happens in the request's thread, not in accept()
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    return server


def for_host(paths: Paths, listen: str, gate: Gate, settings: WebSettings) -> WebServer:
    """The server of the logical host of ``paths``, talking to its control socket."""
    return make_server(listen, Backend(paths.socket), gate, paths.lhost, settings)


def serve(server: WebServer, say: Any = print) -> None:
    """Serve until interrupted (SIGINT, or SIGTERM turned into it by the caller)."""
    say(f"ajs3 web: serving logical host {server.lhost} on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        time.sleep(0)
