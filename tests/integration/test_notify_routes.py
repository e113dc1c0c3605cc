"""The syslog and mail routes through a real daemon: a unix datagram socket made by
the test, and a real SMTP server (aiosmtpd) on the loopback started by the test."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from lhost import LogicalHost, wait_for

JOBS = """
    group: /r
    jobnets:
      - name: bad
        units:
          - {name: fails, command: [sh, -c, 'exit 3']}
      - name: warn
        units:
          - {name: warns, command: [sh, -c, 'exit 5'], warning_threshold: 4,
             abnormal_threshold: 10}
"""


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield path, sock
    sock.close()


def read_lines(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.append(sock.recv(65536).decode())
        except TimeoutError:
            return into


def test_syslog_route_sends_one_line_per_event_at_the_status_severity(
    make_lhost: Any, syslog_socket: tuple[Path, socket.socket]
) -> None:
    path, sock = syslog_socket
    host: LogicalHost = make_lhost("lh1")
    host.write_settings(f"""
    notify:
      - name: log
        kind: syslog
        socket: {path}
        facility: local3
      - name: old
        kind: syslog
        socket: {path}
        format: rfc3164
        events: [unit_ended_warning]
    """)
    host.start()
    host.define(JOBS)
    host.wait(host.entry("/r/bad"))
    host.wait(host.entry("/r/warn"))
    lines: list[str] = []

    def line_of(pattern: str) -> str | None:
        read_lines(sock, lines)
        return next((x for x in lines if re.search(pattern, x)), None)

    # local3 = 19: <19*8 + severity>; RFC 5424: version 1, MSGID = the event kind
    started = wait_for(lambda: line_of(r"^<158>1 \S+ \S+ ajs3 \d+ host_started - "), 30)
    abnormal = wait_for(lambda: line_of(r"^<155>1 .* unit_ended_abnormally - "), 30)
    assert "[lh1] unit_ended_abnormally /r/bad/fails ended_abnormally exit 3" in abnormal
    assert re.search(r"event_id=[0-9a-f]{32}$", abnormal)
    warning = wait_for(lambda: line_of(r"^<156>1 .* unit_ended_warning - "), 30)
    assert "/r/warns" not in warning and "/r/warn/warns" in warning
    # the RFC 3164 route wants warnings only: <daemon*8 + warning> = <28>
    old = wait_for(lambda: line_of(r"^<28>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ajs3\[\d+\]: "), 30)
    assert "unit_ended_warning /r/warn/warns" in old
    assert started and not any(x.startswith("<28>") and "abnormally" in x for x in lines)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content, policy=default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def test_mail_route_sends_a_subject_an_on_call_person_can_act_on(
    make_lhost: Any, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    host: LogicalHost = make_lhost("lh1")
    host.write_settings(f"""
    notify:
      - name: oncall
        kind: mail
        host: 127.0.0.1
        port: {port}
        from: ajs3@example.com
        to: [oncall@example.com, ops@example.com]
        statuses: [ended_abnormally]
        units: ['/r/*/fails']
    """)
    host.start()
    host.define(JOBS)
    run = host.entry("/r/bad")
    host.wait(run)
    host.wait(host.entry("/r/warn"))
    got = wait_for(lambda: inbox.messages, 30, "a mail")
    mail = got[0]
    run_id = host.units(run)["/r/bad/fails"]["run_id"]
    subject = mail["Subject"]
    for part in ("lh1", "/r/bad/fails", "ended_abnormally", "exit 3", f"run id {run_id}"):
        assert part in subject, (part, subject)
    assert mail["To"] == "oncall@example.com, ops@example.com"
    event_id = mail["X-AJS3-Event-Id"]
    assert mail["Message-ID"] == f"<{event_id}@lh1.ajs3>"
    # the filters: only the abnormal job's end (not the jobnet's, not the warning)
    sent = host.run("notify", "test", "oncall").stdout
    assert "delivered" in sent
    wait_for(lambda: len(inbox.messages) == 2, 30, "the test mail")
    assert [m["X-AJS3-Event-Id"] == event_id for m in inbox.messages] == [True, False]
    assert "test" in inbox.messages[1]["Subject"]


def test_an_unreachable_smtp_server_is_a_coded_error_of_notify_test(
    make_lhost: Any,
) -> None:
    host: LogicalHost = make_lhost("lh1")
    host.write_settings(f"""
    notify:
      - {{name: mail, kind: mail, host: 127.0.0.1, port: {free_port()}, timeout: 2,
          from: a@example.com, to: b@example.com, backoff: {{first: 60}}}}
    """)
    host.start()
    done = host.run("notify", "test", "mail", check=False)
    assert done.returncode == 1
    assert "AJS3-E410" in done.stderr and "SMTP server 127.0.0.1" in done.stderr
    status = host.run("service", "status").stdout
    assert "notify route mail (mail):" in status and "failure(s) in a row" in status
