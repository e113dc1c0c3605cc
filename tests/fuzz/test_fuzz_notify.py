"""The ``notify:`` routes of a settings file: any YAML-like value gives routes or
AJS3-E206 naming the file, never another exception, a hang or unbounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzzguard import guarded
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ajs3 import settings as ajs3_settings
from ajs3.errors import AjsError, Code
from ajs3.model import EventKind, Status

TARGET = "notify-routes"
PATH = Path("/srv/lh1/ajs3.yaml")

_KEYS = [
    "name", "kind", "events", "statuses", "units", "timeout", "backoff", "command",
    "user", "socket", "format", "facility", "host", "port", "from", "to", "starttls",
    "first", "max", "zz",
]  # fmt: skip
_WORDS = [
    "command", "syslog", "mail", "sms", "root", "nobody", "/bin/true", "true", "/dev/log",
    "rfc5424", "rfc3164", "local3", "kern", "a@b.org", "", "/p/*", "+30m",
    *(k.value for k in EventKind), *(s.value for s in Status),
]  # fmt: skip
_scalar = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 25, 2**70, 0.5, 1e300, float("nan")]),
    st.sampled_from(_WORDS),
    st.text(max_size=6),
)
# lists and mappings one level deep: the routes' own values are never deeper
_value = st.one_of(
    _scalar,
    st.lists(_scalar, max_size=3),
    st.dictionaries(st.sampled_from(_KEYS), _scalar, max_size=3),
)
_named = st.builds(
    lambda name, kind, extra: {"name": name, "kind": kind, **extra},
    st.sampled_from(["a", "b", "", "x y"]),
    st.sampled_from(["command", "syslog", "mail", "sms"]),
    st.dictionaries(st.sampled_from(_KEYS[2:]), _value, max_size=5),
)
_route = _named | st.dictionaries(st.sampled_from(_KEYS), _value, max_size=5)
_notify = st.one_of(st.lists(_route, max_size=3), _value)


def _parse(data: Any) -> None:
    with guarded(TARGET):
        base = ajs3_settings.Settings(lhost="lh1", datadir=PATH.parent)
        try:
            parsed = ajs3_settings.parse(data, PATH, base)
        except AjsError as exc:
            assert exc.code is Code.SETTINGS and str(PATH) in exc.message, exc
            return
        for route in parsed.notify:
            assert route.name and route.kind.value in ("command", "syslog", "mail")


@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_notify, st.booleans())
# found by this test in CI: a list where a word was expected raised TypeError
@example([{"name": "a", "kind": "syslog", "facility": []}], False)
@example([{"name": "a", "kind": "syslog", "format": {}}], False)
def test_any_notify_value_gives_routes_or_e206(notify: Any, root: bool) -> None:
    _parse({"notify": notify, "allow_root_jobs": root})
