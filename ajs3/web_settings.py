"""The ``web:`` key of a logical host's settings: how `ajs3 web` listens and whom it
lets in (docs/web.md). Parsed here, beside the other settings, so that a typo is
refused (AJS3-E206) when the settings are read, not when the console starts.

::

    web:
      serve: true                      # the daemon starts `ajs3 web` (and again if it dies)
      listen: 127.0.0.1:8470          # HOST:PORT
      tokens:                          # or token: TEXT (one operator token named "web")
        - {name: alice, token: "...", role: operator}
        - {name: wall, token: "...", role: viewer}
      metrics_open: false              # /metrics without a token
      tls_cert: /etc/ajs3/web.crt      # both or neither
      tls_key: /etc/ajs3/web.key
      trusted_header:                  # behind a reverse proxy that authenticates
        name: X-Remote-User
        operators: [alice]
        viewers: [bob]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code

#: Where `ajs3 web` listens unless told otherwise (a port no well-known service takes).
DEFAULT_LISTEN = "127.0.0.1:8470"
#: A token shorter than this is refused: a guessable token is no authentication.
MIN_TOKEN = 16
ROLES = ("operator", "viewer")


@dataclass(frozen=True)
class Token:
    """One bearer token: who presents it (for the audit) and what it may do."""

    name: str
    token: str
    role: str


@dataclass(frozen=True)
class TrustedHeader:
    """A header a reverse proxy sets to the authenticated user's name."""

    name: str
    operators: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSettings:
    listen: str = DEFAULT_LISTEN
    tokens: tuple[Token, ...] = ()
    metrics_open: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_header: TrustedHeader | None = None
    #: the daemon starts `ajs3 web` with itself, and again when it dies
    serve: bool = False


def _bad(path: Path, what: str) -> AjsError:
    return AjsError(
        f"{path}: web: {what}",
        code=Code.SETTINGS,
        hint=f"fix web: in {path} (docs/web.md), then start `ajs3 web` again",
    )


def _word(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise _bad(path, f"{key} must be a text without spaces")
    return value


def check_listen(text: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port), or AJS3-E206 naming ``where``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AjsError(
            f"{where}: listen must be HOST:PORT, not {text[:100]!r}",
            code=Code.SETTINGS,
            hint=f"e.g. {DEFAULT_LISTEN}",
        )
    return host, int(port)


def _token(path: Path, value: Any) -> Token:
    if (
        not isinstance(value, dict)
        or not {"name", "token"} <= set(value)
        or not set(value)
        <= {
            "name",
            "token",
            "role",
        }
    ):
        raise _bad(path, "each of tokens is a mapping of name, token and role")
    token = value["token"]
    if not isinstance(token, str) or len(token) < MIN_TOKEN or not token.isprintable():
        raise _bad(path, f"a token is a text of at least {MIN_TOKEN} characters")
    role = value.get("role", "operator")
    if role not in ROLES:
        raise _bad(path, f"a token's role is one of {list(ROLES)}")
    return Token(_word(path, "name", value["name"]), token, role)


def _names(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad(path, f"trusted_header: {key} must be a list of user names")
    return tuple(_word(path, key, v) for v in value)


def parse_web(data: Any, path: Path) -> WebSettings:
    """The ``web:`` mapping of the settings file ``path``."""
    if data is None:
        return WebSettings()
    known = {
        "serve",
        "listen",
        "token",
        "tokens",
        "metrics_open",
        "tls_cert",
        "tls_key",
        "trusted_header",
    }
    if not isinstance(data, dict) or not set(data) <= known:
        raise _bad(path, f"must be a mapping of {sorted(known)}")
    listen = data.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen, str):
        raise _bad(path, "listen must be HOST:PORT")
    check_listen(listen, f"{path}: web")
    tokens = (
        [_token(path, t) for t in (data.get("tokens") or [])]
        if isinstance(data.get("tokens", []), list)
        else None
    )
    if tokens is None:
        raise _bad(path, "tokens must be a list")
    if data.get("token") is not None:
        tokens.append(_token(path, {"name": "web", "token": data["token"]}))
    if len({t.token for t in tokens}) != len(tokens):
        raise _bad(path, "two tokens are the same")
    metrics_open, serve = data.get("metrics_open", False), data.get("serve", False)
    if not isinstance(metrics_open, bool) or not isinstance(serve, bool):
        raise _bad(path, "metrics_open and serve are true or false")
    cert, key = data.get("tls_cert"), data.get("tls_key")
    if (cert is None) != (key is None):
        raise _bad(path, "tls_cert and tls_key go together")
    if cert is not None and (not isinstance(cert, str) or not isinstance(key, str)):
        raise _bad(path, "tls_cert and tls_key are file paths")
    header = data.get("trusted_header")
    trusted = None
    if header is not None:
        if (
            not isinstance(header, dict)
            or "name" not in header
            or not set(header)
            <= {
                "name",
                "operators",
                "viewers",
            }
        ):
            raise _bad(path, "trusted_header is a mapping of name, operators and viewers")
        trusted = TrustedHeader(
            _word(path, "trusted_header: name", header["name"]),
            _names(path, "operators", header.get("operators")),
            _names(path, "viewers", header.get("viewers")),
        )
    return WebSettings(
        listen=listen,
        tokens=tuple(tokens),
        metrics_open=metrics_open,
        tls_cert=None if cert is None else Path(cert),
        tls_key=None if key is None else Path(key),
        trusted_header=trusted,
        serve=serve,
    )
