"""The control protocol is defined once: the daemon's handlers and the client's methods
match the request definitions, and every malformed request is a coded error."""

from __future__ import annotations

import base64
import inspect
import json
import os
import typing
from pathlib import Path
from typing import Any

import pytest

from ajs3.errors import AjsError, Code
from ajs3.service import joboutput, protocol
from ajs3.service.client import Client
from ajs3.service.daemon import Daemon
from ajs3.service.protocol import OPS, BadRequest, Field, Kind, handler_arg


def _handlers() -> dict[str, Any]:
    return {
        name[3:]: fn
        for klass in Daemon.__mro__
        for name, fn in vars(klass).items()
        if name.startswith("op_")
    }


def test_the_daemon_handles_every_request_the_protocol_defines_and_no_other() -> None:
    assert set(_handlers()) == set(OPS)


def test_the_client_can_send_every_request_and_no_other() -> None:
    methods = {
        n
        for n, f in vars(Client).items()
        if inspect.isfunction(f) and not n.startswith("_") and n not in ("call",)
    }
    assert methods == set(OPS)


def _optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_handler_takes_exactly_the_fields_of_its_request(name: str) -> None:
    handler = _handlers()[name]
    params = inspect.signature(handler).parameters
    hints = typing.get_type_hints(handler)
    keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == {handler_arg(f.name) for f in OPS[name].fields}
    for f in OPS[name].fields:
        # a required field is never None; an optional one may be: the handler must say so
        assert _optional(hints[handler_arg(f.name)]) is not f.required, f.name


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_client_method_sends_exactly_the_fields_of_its_request(name: str) -> None:
    params = inspect.signature(getattr(Client, name)).parameters
    names = {p.rstrip("_") for p in params if p != "self"}
    assert names == {f.name for f in OPS[name].fields}


def _sample(f: Field) -> Any:
    if f.choices:
        return f.choices[0]
    if f.pattern is protocol.KEY_RE:
        return "k" * 32
    return {
        Kind.TEXT: "/a/b",
        Kind.INT: 3,
        Kind.NUMBER: 1.5,
        Kind.BOOL: True,
        Kind.TEXTS: ["x"],
        Kind.FILES: [{"name": "a.yaml", "text": "jobnets: []"}],
    }[f.kind]


@pytest.mark.parametrize("name", sorted(OPS))
def test_a_full_request_goes_through_the_wire_unchanged(name: str) -> None:
    values = {f.name: _sample(f) for f in OPS[name].fields}
    request = protocol.build(name, **values)
    again = protocol.check(protocol.decode(request.to_line().rstrip(b"\n")))
    assert again == request


@pytest.mark.parametrize(
    "line",
    [
        b"[]",
        b'"x"',
        b"1",
        b"null",
        b"true",
        b"{}",
        b'{"op": 1}',
        b'{"op": "nope"}',
        b'{"op": "ping", "extra": 1}',
        b'{"op": "entry", "jobnet": "/a"}',
        b'{"op": "entry", "jobnet": 5, "key": "kkkkkkkkkk"}',
        b'{"op": "entry", "jobnet": "/a", "key": "bad key!"}',
        b'{"op": "entry", "jobnet": "/a", "key": "kkkkkkkkkk", "at": NaN}',
        b'{"op": "entry", "jobnet": "/a", "key": "kkkkkkkkkk", "at": 1e999}',
        b'{"op": "entry", "jobnet": "/a", "key": "kkkkkkkkkk", "hold": "yes"}',
        b'{"op": "hold", "unit": "/a", "run": true}',
        b'{"op": "hold", "unit": "/a", "run": 1.5}',
        b'{"op": "hold", "unit": "/a", "run": 0}',
        b'{"op": "hold", "unit": "\\ud800"}',
        b'{"op": "stop", "jobs": "all"}',
        b'{"op": "stop", "timeout": "x"}',
        b'{"op": "define", "files": "x"}',
        b'{"op": "define", "files": [1]}',
        b'{"op": "define", "files": [{"name": "a", "text": "\\udc00"}]}',
        b'{"op": "define", "files": [{"name": "a", "text": "x", "mode": 1}]}',
        b'{"op": "reload", "log_level": "loud"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000,
        b"\xff\xfe",
        b"",
        b"{" + b" " * 10,
    ],
)
def test_a_malformed_request_is_a_coded_error(line: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        protocol.check(protocol.decode(line))
    assert caught.value.code is Code.BAD_REQUEST
    assert caught.value.message.startswith("bad request: ")


def test_a_request_over_the_size_bound_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(BadRequest, match="larger than"):
        protocol.decode(b" " * (protocol.MAX_REQUEST + 1))


def test_an_absent_optional_field_reaches_the_handler_as_none() -> None:
    request = protocol.check(json.loads('{"op": "hold", "unit": "/a/b"}'))
    assert request.fields == {"run": None, "unit": "/a/b"}


def test_the_client_refuses_to_send_what_the_daemon_would_refuse(tmp_path: Any) -> None:
    # nothing listens there: the check happens before any connection
    with pytest.raises(BadRequest):
        Client(tmp_path / "none.sock").call("hold", unit=3)
    with pytest.raises(BadRequest):
        Client(tmp_path / "none.sock").call("format_disk")


def test_log_returns_the_last_mib_and_says_it_cut(tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    out.write_bytes(b"a" * 10 + b"\xff" + b"b" * 20)
    whole = joboutput.read_log(out)
    assert base64.b64decode(whole["data"]) == out.read_bytes() and not whole["truncated"]
    cut = joboutput.read_log(out, limit=8)
    assert base64.b64decode(cut["data"]) == b"b" * 8
    assert cut["truncated"] and cut["size"] == 31 and cut["offset"] == 23


def test_log_from_an_offset_returns_at_most_the_limit_from_there(tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    out.write_bytes(bytes(range(31)))
    part = joboutput.read_log(out, limit=8, start=5)
    assert base64.b64decode(part["data"]) == bytes(range(5, 13))
    assert part["offset"] == 5 and part["size"] == 31 and not part["truncated"]
    rest = joboutput.read_log(out, start=13)
    assert base64.b64decode(rest["data"]) == bytes(range(13, 31))
    for start in (31, 99):  # at or past the end: nothing, from the end
        none = joboutput.read_log(out, start=start)
        assert none["data"] == "" and none["offset"] == 31 and not none["truncated"]


def test_log_never_follows_a_link_nor_reads_a_fifo(tmp_path: Path) -> None:
    """The job's user may write its job directory: what the daemon reads there for a
    viewer is that directory's regular file, never a file a link points to."""
    secret = tmp_path / "secret"
    secret.write_text("root's")
    link = tmp_path / "stdout"
    link.symlink_to(secret)
    with pytest.raises(AjsError) as caught:
        joboutput.read_log(link)
    assert caught.value.code is Code.UNSAFE_PATH
    fifo = tmp_path / "stderr"
    os.mkfifo(fifo)
    with pytest.raises(AjsError) as caught:
        joboutput.read_log(fifo)
    assert caught.value.code is Code.UNSAFE_PATH
