"""Delivering one event on one route: a command, a syslog line, or a mail.

Each way is bounded in time by the route's ``timeout`` and raises
:class:`DeliveryFailed` with a one-line reason when the event did not get through;
the sender (:mod:`ajs3.notify.sender`) retries it later.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from ajs3.engine.jobenv import job_environment, resolve_user
from ajs3.errors import AjsError
from ajs3.notify.events import message
from ajs3.notify_routes import FACILITIES, Route, RouteKind, SyslogFormat
from ajs3.settings import Settings

#: syslog severities (RFC 5424 table 2) of the event severities
SEVERITIES = {"err": 3, "warning": 4, "info": 6}
#: The most of a failing command's standard error kept in its error.
STDERR_KEPT = 500


class DeliveryFailed(Exception):
    """An event did not get through a route (the message says why, in one line)."""


def deliver(route: Route, body: dict[str, Any], settings: Settings) -> None:
    """Deliver ``body`` on ``route`` or raise :class:`DeliveryFailed`."""
    if route.kind is RouteKind.COMMAND:
        run_command(route, body, settings)
    elif route.kind is RouteKind.SYSLOG:
        send_syslog(route, body)
    else:
        send_mail(route, body)


# -- command ---------------------------------------------------------------------------------


def variables(body: dict[str, Any], route: str) -> dict[str, str]:
    """The AJS3_* variables of an event: each plain field of its body, upper case
    (``event_id`` -> ``AJS3_EVENT_ID``, ``exit_code`` -> ``AJS3_EXIT_CODE``)."""
    env = {"AJS3_ROUTE": route}
    for key, value in body.items():
        if value is None or isinstance(value, (dict, list)):
            continue
        env["AJS3_" + key.upper()] = str(value).replace("\0", "")
    return env


def run_command(route: Route, body: dict[str, Any], settings: Settings) -> None:
    euid = os.geteuid()
    try:
        user = resolve_user(
            route.user or (settings.default_user if euid == 0 else None),
            daemon_uid=euid,
            default_user=settings.default_user,
            allow_root=settings.allow_root_jobs,
            unit=f"notify route {route.name}",
        )
    except AjsError as exc:
        raise DeliveryFailed(str(exc)) from None
    env = job_environment(user, variables(body, route.name), os.environ, settings.env_passthrough)
    drop: dict[str, Any] = {}
    if euid == 0 and user.uid != 0:
        drop = {"user": user.uid, "group": user.gid, "extra_groups": []}
    try:
        proc = subprocess.Popen(
            list(route.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,
            close_fds=True,
            **drop,
        )
    except OSError as exc:
        raise DeliveryFailed(f"cannot run {route.command[0]}: {exc}") from None
    data = json.dumps(body, sort_keys=True, default=str).encode() + b"\n"
    try:
        _, err = proc.communicate(data, timeout=route.timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DeliveryFailed(f"{route.command[0]} did not end within {route.timeout:g} s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip()[-STDERR_KEPT:]
        raise DeliveryFailed(
            f"{route.command[0]} exited {proc.returncode}" + (f": {tail}" if tail else "")
        )


# -- syslog ----------------------------------------------------------------------------------


def syslog_line(route: Route, body: dict[str, Any]) -> bytes:
    """One RFC 5424 (or RFC 3164) line: the event's message and its id."""
    pri = FACILITIES[route.facility] * 8 + SEVERITIES.get(str(body.get("severity")), 6)
    at = float(body.get("at") or time.time())
    host = str(body.get("node") or socket.gethostname()).replace(" ", "_") or "-"
    text = f"{body.get('message', '')} event_id={body.get('event_id')}"
    if route.format is SyslogFormat.RFC3164:
        stamp = time.strftime("%b %e %H:%M:%S", time.localtime(at))
        return f"<{pri}>{stamp} {host} ajs3[{os.getpid()}]: {text}".encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"
    msgid = str(body.get("kind") or "-")[:32]
    return f"<{pri}>1 {stamp} {host} ajs3 {os.getpid()} {msgid} - {text}".encode()


def send_syslog(route: Route, body: dict[str, Any]) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.settimeout(route.timeout)
        sock.connect(route.socket)
        sock.send(syslog_line(route, body))
    except OSError as exc:
        raise DeliveryFailed(f"syslog socket {route.socket}: {exc}") from None
    finally:
        sock.close()


# -- mail ------------------------------------------------------------------------------------


def mail_message(route: Route, body: dict[str, Any]) -> EmailMessage:
    """A mail an on-call person can act on from its subject alone."""
    msg = EmailMessage()
    msg["Subject"] = message(body, detail=False)[:200]
    msg["From"] = route.sender
    msg["To"] = ", ".join(route.to)
    msg["Date"] = formatdate(float(body.get("at") or time.time()))
    msg["Message-ID"] = f"<{body.get('event_id')}@{body.get('lhost', 'ajs3')}.ajs3>"
    msg["X-AJS3-Event-Id"] = str(body.get("event_id"))
    msg["X-AJS3-Severity"] = str(body.get("severity"))
    text = str(body.get("message", "")) + "\n\n" + json.dumps(body, indent=2, sort_keys=True)
    msg.set_content(text + "\n")
    return msg


def send_mail(route: Route, body: dict[str, Any]) -> None:
    try:
        with smtplib.SMTP(route.host, route.port, timeout=route.timeout) as smtp:
            if route.starttls:
                smtp.starttls()
            smtp.send_message(mail_message(route, body))
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(
            f"SMTP server {route.host}:{route.port}: {exc or type(exc).__name__}"
        ) from None
