"""`ajs3 web`'s parsers under hostile input: the ``web:`` settings give WebSettings or
AJS3-E206 naming the file; any request (method, path, query, body, headers) gives an
answer with a JSON body and a status of the API, never an exception or a hang. No
daemon listens, so what reaches the control client is answered 503."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fuzzguard import guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ajs3 import settings as ajs3_settings
from ajs3.errors import AjsError, Code
from ajs3.web import api
from ajs3.web.auth import Gate, Identity, WebRole
from ajs3.web.backend import Backend
from ajs3.web_settings import parse_web

PATH = Path("/srv/lh1/ajs3.yaml")
TOKEN = "t" * 20
_KEYS = ["serve", "listen", "token", "tokens", "metrics_open", "tls_cert", "tls_key",
         "trusted_header", "name", "role", "operators", "viewers", "zz"]  # fmt: skip
_scalar = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 2**70, 0.5, float("nan"), "", TOKEN,
                     "127.0.0.1:0", "[::1]:99999", ":80", "operator", "viewer", "X-User"]),
    st.text(max_size=24),
)  # fmt: skip
_value = st.one_of(
    _scalar,
    st.lists(_scalar, max_size=3),
    st.dictionaries(st.sampled_from(_KEYS), _scalar, max_size=3),
    st.lists(st.dictionaries(st.sampled_from(_KEYS), _scalar, max_size=3), max_size=3),
)
_web = st.one_of(st.dictionaries(st.sampled_from(_KEYS), _value, max_size=6), _value)


@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_web)
def test_any_web_value_gives_settings_or_e206(web: Any) -> None:
    with guarded("web-settings"):
        try:
            parsed = ajs3_settings.parse({"web": web}, PATH, ajs3_settings.Settings("h", PATH))
        except AjsError as exc:
            assert exc.code is Code.SETTINGS and str(PATH) in exc.message, exc
            return
        assert parsed.web == parse_web(web, PATH)
        assert all(len(t.token) >= 16 for t in parsed.web.tokens)


_SEGMENTS = ["api", "v1", "runs", "1", "0", "-1", "99999999999999999999", "why", "log", "events",
             "latest", "jobnets", "plan", "graph", "timeline", "actions", "entry", "stop",
             "openapi.json", "whoami", "status", "..", "", "%2F", "\x00", "é"]  # fmt: skip
_QKEYS = ["unit", "jobnet", "run", "all", "stderr", "from", "to", "zz"]
_QVALUES = ["", "/a/b", "1", "0", "-3", "true", "yes", "2027-01-01", "2027-13-45T99",
            "1e400", "nan", "inf", "9" * 40, "\x00", "/" * 5000]  # fmt: skip


@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    segments=st.lists(st.sampled_from(_SEGMENTS) | st.text(max_size=8), max_size=5),
    query=st.dictionaries(st.sampled_from(_QKEYS), st.sampled_from(_QVALUES) | st.text(max_size=8)),
    body=st.one_of(st.binary(max_size=64), st.sampled_from([b"{}", b"[]", b"null",
         b'{"jobnet": "/a"}', b'{"on_behalf": "x"}', b'{"run": "x"}', b"{" * 5000])),
    role=st.sampled_from(list(WebRole)),
)  # fmt: skip
def test_any_request_gets_an_answer_of_the_api(
    method: str, segments: list[str], query: dict[str, str],
    body: bytes, role: WebRole,
) -> None:  # fmt: skip
    backend = Backend(Path("/nonexistent/ajs3-fuzz/control.sock"), timeout=1.0)
    with guarded("web-api"):
        req = api.Request(method, "/" + "/".join(segments), query, body, Identity("f", role))
        answer = api.dispatch(backend, req)
        assert answer.status in (200, 400, 401, 403, 404, 405, 409, 503), answer
        if answer.raw is None:
            json.dumps(answer.body)
        if role is WebRole.NONE:
            assert answer.status == 401


@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["Authorization", "X-User", "authorization"]),
        st.text(max_size=40) | st.sampled_from([f"Bearer {TOKEN}", "Bearer ", "bearer  " + TOKEN]),
    )
)
def test_any_headers_give_an_identity(headers: dict[str, str]) -> None:  # fmt: skip
    gate = Gate(parse_web({"tokens": [{"name": "a", "token": TOKEN, "role": "viewer"}],
                           "trusted_header": {"name": "X-User", "operators": ["root"]}}, PATH),
                environ={})  # fmt: skip
    with guarded("web-identify"):
        who = gate.identify(headers)
        auth = headers.get("Authorization", "")
        if who.name == "a":
            assert auth.split(None, 1)[-1].strip() == TOKEN
        elif who.role is not WebRole.NONE:
            assert headers.get("X-User", "").strip() == "root"
