"""A daemon no client can stop: malformed requests, slow clients and lost answers, tried
against a real daemon while its jobs run."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from typing import Any

import pytest
from lhost import LogicalHost, wait_for

from ajs3.errors import AjsError, Code, DefinitionError
from ajs3.service import protocol
from ajs3.service.client import Client, new_key

#: Every shape of bad request the daemon must answer with AJS3-E310 and survive.
MALFORMED: list[bytes] = [
    b"[]",
    b'"x"',
    b"1",
    b"null",
    b"{}",
    b'{"op": null}',
    b'{"op": "nope"}',
    b'{"op": "entry", "jobnet": 5, "key": "kkkkkkkkkk"}',
    b'{"op": "entry", "jobnet": "/a", "key": "kkkkkkkkkk", "at": "tomorrow"}',
    b'{"op": "hold", "unit": ["/a"]}',
    b'{"op": "stop", "jobs": "everything"}',
    b'{"op": "define", "files": {"a": 1}}',
    b'{"op": "ping", "op_ping": 1}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000,
    b"\xff\xfe\x00",
    b"NaN",
]


def client(host: LogicalHost, timeout: float = 30.0, retries: int = 2) -> Client:
    return Client(host.rundir / "control.sock", timeout=timeout, retries=retries)


def raw(host: LogicalHost, payload: bytes, timeout: float = 30.0) -> dict[str, Any] | None:
    """Send bytes as they are; the daemon's answer, or None if it closed without one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(host.rundir / "control.sock"))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data) if data else None


def code_of(answer: dict[str, Any] | None) -> str | None:
    return None if answer is None or answer.get("ok") else answer["error"]["code"]


CHAIN = """
    group: /f
    jobnets:
      - name: chain
        units:
          - {name: j1, command: [/bin/true]}
          - {name: j2, after: [j1], command: [/bin/true]}
          - {name: j3, after: [j2], command: [/bin/true]}
      - name: timed
        units:
          - {name: slow, command: [sleep, '60'], timeout: 1, kill_grace: 1}
"""


def test_a_flood_of_malformed_requests_leaves_the_daemon_up_and_its_jobs_running(
    lhost: LogicalHost,
    figure: Any,
) -> None:
    lhost.define(CHAIN)
    c = client(lhost)
    first = time.time() + 1.0
    timed = [c.entry("/f/chain", at=first + 0.5 * i)["run"] for i in range(8)]
    stop = threading.Event()
    answers: dict[str | None, int] = {}
    lock = threading.Lock()
    rng = random.Random(12)

    def flood() -> None:
        while not stop.is_set():
            payload = rng.choice([*MALFORMED, rng.randbytes(rng.randrange(1, 2000))])
            try:
                code = code_of(raw(lhost, payload + b"\n"))
            except (OSError, ValueError) as exc:
                code = f"client: {type(exc).__name__}"
            with lock:
                answers[code] = answers.get(code, 0) + 1

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for run in timed:
            lhost.wait(run, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    sql = (
        "SELECT r.scheduled_at, min(u.started_at) FROM jobnet_runs r JOIN unit_runs u"
        " ON u.jobnet_run=r.id WHERE r.id=? AND u.kind='job'"
    )
    delays = [b - a for a, b in (lhost.journal_query(sql, (run,))[0] for run in timed)]
    total = sum(answers.values())
    figure(
        f"flood: {total} malformed requests, answers by code {answers}; scheduling "
        f"latency of the {len(timed)} timed runs during it: min {min(delays) * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms, mean {sum(delays) / len(delays) * 1000:.0f} ms"
    )
    for run in timed:
        assert lhost.units(run)["/f/chain"]["status"] == "ended_normally"
    assert set(answers) == {Code.BAD_REQUEST.value}, answers
    assert c.ping()["pid"] == lhost.daemon_pid()


@pytest.mark.parametrize("payload", MALFORMED, ids=lambda p: repr(p[:24]))
def test_each_malformed_shape_is_answered_e310(lhost: LogicalHost, payload: bytes) -> None:
    answer = raw(lhost, payload + b"\n")
    assert code_of(answer) == Code.BAD_REQUEST.value
    assert answer is not None and "bad request" in answer["error"]["message"]
    assert client(lhost).ping()["pid"] == lhost.daemon_pid()


def test_a_request_over_the_size_bound_is_refused_and_the_daemon_stays(
    lhost: LogicalHost,
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(lhost.rundir / "control.sock"))
        sent = 0
        try:
            while sent <= protocol.MAX_REQUEST + 65536:
                sock.sendall(b" " * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and closed before we were done
        data = sock.recv(65536)
    assert json.loads(data)["error"]["code"] == Code.BAD_REQUEST.value
    assert client(lhost).ping()["pid"] == lhost.daemon_pid()


def test_a_slow_client_does_not_stop_scheduling(lhost: LogicalHost) -> None:
    lhost.define(CHAIN)
    results: list[dict[str, Any] | None] = []

    def trickle() -> None:
        """A byte of a valid request every 3 s: each read is quick, the request never is."""
        line = protocol.build("ping").to_line()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(str(lhost.rundir / "control.sock"))
            try:
                for byte in line[:-1]:
                    sock.send(bytes([byte]))
                    time.sleep(3)
            except OSError:
                pass  # the daemon gave up on us: read its answer
            data = sock.recv(65536)
        results.append(json.loads(data) if data else None)

    slow = [threading.Thread(target=trickle) for _ in range(3)]
    for t in slow:
        t.start()
    try:
        c = client(lhost)
        run = c.entry("/f/timed")["run"]
        # while the slow clients hold their connections: other requests are answered and
        # the job's timeout is enforced
        assert c.ping()["pid"] == lhost.daemon_pid()
        lhost.wait(run, timeout=30)
        assert lhost.units(run)["/f/timed/slow"]["status"] == "killed"
        assert any(t.is_alive() for t in slow), "the slow clients ended before the job"
    finally:
        for t in slow:
            t.join()
    assert [code_of(r) for r in results] == [Code.REQUEST_TIMEOUT.value] * 3


def test_entry_is_idempotent_by_key(lhost: LogicalHost) -> None:
    lhost.define(CHAIN)
    c = client(lhost)
    key = new_key()
    first = c.entry("/f/chain", key=key)
    again = c.entry("/f/chain", key=key)
    assert again["run"] == first["run"] and again.get("repeated") is True
    with pytest.raises(AjsError) as caught:
        c.entry("/f/timed", key=key)
    assert caught.value.code is Code.BAD_REQUEST
    lhost.stop()
    lhost.start()
    assert client(lhost).entry("/f/chain", key=key)["run"] == first["run"]
    assert lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == 1


def test_a_client_that_got_no_answer_is_not_told_not_registered(lhost: LogicalHost) -> None:
    """The issue's case: the answer is lost, the registration is not. The client says
    "outcome unknown", and its retry with the same key gets the first registration."""
    lhost.define(CHAIN)
    pid = lhost.daemon_pid()
    assert pid is not None
    key = new_key()
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(AjsError) as caught:
            client(lhost, timeout=0.5, retries=0).entry("/f/chain", key=key)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert caught.value.code is Code.OUTCOME_UNKNOWN
    assert key in caught.value.hint
    # the daemon reads the request that waited in the socket and registers it
    wait_for(
        lambda: lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == 1,
        timeout=30,
        message="the request sent before the stop is registered",
    )
    again = client(lhost).entry("/f/chain", key=key)
    assert again.get("repeated") is True
    assert lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == 1


def test_define_over_the_socket_is_validated_by_the_loader(lhost: LogicalHost) -> None:
    lhost.define(CHAIN)
    before = lhost.journal_query("SELECT max(version) FROM definitions")[0][0]
    bad = "jobnets:\n  - name: n\n    units:\n      - {name: j, command: [x], timeout: x}\n"
    with pytest.raises(DefinitionError) as caught:
        client(lhost).define([("bad.yaml", bad)])
    assert caught.value.problems[0].file == "bad.yaml"
    assert caught.value.problems[0].line == 4
    assert lhost.journal_query("SELECT max(version) FROM definitions")[0][0] == before
    good = client(lhost).define(
        [
            (
                "one.yaml",
                "group: /g\njobnets:\n  - name: n\n    units:\n"
                "      - {name: j, command: [/bin/true], timeout: 5}\n",
            )
        ]
    )
    assert good["jobnets"] == ["/g/n"]
    assert client(lhost).ping()["pid"] == lhost.daemon_pid()


def test_every_request_of_the_protocol_is_handled_and_changes_are_audited(
    lhost: LogicalHost,
) -> None:
    lhost.define(CHAIN)
    c = client(lhost)
    run = c.entry("/f/chain", hold=True)["run"]
    calls: dict[str, Any] = {
        "ping": c.ping,
        "why": lambda: c.why("/f/chain/j1", run=run),
        "show": lambda: c.show("/f/chain", run=run, all=True),
        "log": lambda: c.log("/f/chain/j1", run=run, stderr=True),
        "events": lambda: c.events("/f/chain/j1", run=run),
        "define": lambda: c.define([("d.yaml", CHAIN.replace("\n    ", "\n"))]),
        "entry": lambda: c.entry("/f/chain", hold=True),
        "hold": lambda: c.hold("/f/chain/j2", run=run),
        "release": lambda: c.release("/f/chain/j2", run=run),
        "kill": lambda: c.kill(run=run, jobnet="/f/chain"),
        "rerun": lambda: c.rerun("failed", run=run, jobnet="/f/chain"),
        "suspend": lambda: c.suspend("/f/chain", reason="test"),
        "resume": lambda: c.resume("/f/chain", reason="test"),
        "plan_change": lambda: c.plan_change("/f/chain", "add", "2999-01-01T00:00"),
        "chgstat": lambda: c.chgstat("/f/chain/j2", "held", "test", run=run),
        "reload": lambda: c.reload("info"),
        "notify_status": c.notify_status,
        "notify_test": lambda: c.notify_test("no-such-route"),  # AJS3-E409, audited
        "purge": c.purge,
        "purge_status": lambda: c.purge_status(plan=True),
        "plan": lambda: c.plan(0.0, 86400.0, jobnet="/f/chain"),
        "structure": lambda: c.structure("/f/chain"),
        "timeline": lambda: c.timeline(0.0, 4e9, jobnet="/f/chain"),
        "changes": c.changes,
        "metrics": c.metrics,
        "stop": lambda: c.stop(jobs="kill", timeout=10),
    }
    assert set(calls) == set(protocol.OPS)
    for name, call in calls.items():
        try:
            call()
        except AjsError as exc:  # refused for the state of the run: handled all the same
            assert exc.code not in (Code.BAD_REQUEST, Code.INTERNAL, Code.CONTROL), (name, exc)
    wait_for(
        lambda: lhost.daemon_pid() is None or not _alive(lhost.daemon_pid()),
        timeout=30,
        message="the daemon stops on request",
    )
    rows = lhost.journal_query("SELECT uid, user, op, code FROM audit ORDER BY id")
    changed = [n for n, op in protocol.OPS.items() if op.access.changes_state]
    assert {r[2] for r in rows} == {*changed}
    assert all(r[0] == 0 and r[1] == "root" for r in rows)
    log = (lhost.datadir / "log" / "ajs3.log").read_text().splitlines()
    audited = [json.loads(x) for x in log if '"audit"' in x]
    assert {a["op"] for a in audited} >= set(changed)


def _alive(pid: int | None) -> bool:
    return pid is not None and os.path.exists(f"/proc/{pid}")


def test_connections_beyond_the_bound_are_refused_e312_and_served_again_after(
    lhost: LogicalHost,
) -> None:
    from ajs3.service.control import ADMIN_RESERVE, MAX_CONNECTIONS

    held = []
    try:
        for _ in range(MAX_CONNECTIONS + ADMIN_RESERVE):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(lhost.rundir / "control.sock"))
            held.append(sock)
        # the daemon takes them in at its pace; the next one beyond the bound is refused
        assert wait_for(
            lambda: (
                code_of(raw(lhost, protocol.build("ping").to_line())) == Code.TOO_MANY_CLIENTS.value
            ),
            timeout=30,
            message="a connection beyond the bound is refused",
        )
    finally:
        for sock in held:
            sock.close()
    assert client(lhost).ping()["pid"] == lhost.daemon_pid()


def test_two_hundred_clients_at_once_are_all_served(lhost: LogicalHost) -> None:
    lhost.define(CHAIN)
    results: list[Any] = []

    def one(i: int) -> None:
        try:
            results.append(
                client(lhost).entry("/f/chain", hold=True)["run"]
                if i % 2
                else client(lhost).ping()["pid"]
            )
        except AjsError as exc:
            results.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in results if isinstance(r, AjsError)] == []
    assert lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == 100
