"""Who is asking `ajs3 web`: a bearer token, or a reverse proxy's trusted header.

``Authorization: Bearer TOKEN`` is compared in constant time with every known token:
``AJS3_WEB_TOKEN`` from the environment (an operator token named ``env``) and the
tokens of the settings' ``web:`` key. A trusted header (``web: trusted_header``) is
believed only when the settings name it, and gives the role its lists say; a user
in neither list is not let in. A request with neither is anonymous (401).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from ajs3.web_settings import Token, WebSettings

#: The environment variable that holds an operator token (the scripting contract).
TOKEN_ENV = "AJS3_WEB_TOKEN"


class Headers(Protocol):
    """What identify reads headers from (http.server's message, or a dict)."""

    def get(self, name: str, /) -> str | None: ...


class WebRole(IntEnum):
    """What a web client may do; each role may do what the ones below it may."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2


@dataclass(frozen=True)
class Identity:
    """An authenticated web client: the name the audit keeps and its role."""

    name: str
    role: WebRole

    @property
    def on_behalf(self) -> str:
        """How the daemon's audit names this client (the ``on_behalf`` field)."""
        return f"web:{self.name}"


ANONYMOUS = Identity("anonymous", WebRole.NONE)


class Gate:
    """Decides the identity of each request from its headers."""

    def __init__(self, settings: WebSettings, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        tokens = list(settings.tokens)
        if env.get(TOKEN_ENV):
            tokens.append(Token("env", env[TOKEN_ENV], "operator"))
        self.tokens = tuple(tokens)
        self.header = settings.trusted_header

    @property
    def configured(self) -> bool:
        """Whether anyone at all can get in (else `ajs3 web` refuses to start)."""
        return bool(self.tokens) or self.header is not None

    def identify(self, headers: Headers) -> Identity:
        auth = headers.get("Authorization") or ""
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            given = presented.strip().encode()
            found = None
            for t in self.tokens:  # every token is compared: no early exit to time
                if hmac.compare_digest(given, t.token.encode()):
                    found = t
            if found is None:
                return ANONYMOUS
            role = WebRole.OPERATOR if found.role == "operator" else WebRole.VIEWER
            return Identity(found.name, role)
        if self.header is not None:
            user = (headers.get(self.header.name) or "").strip()
            if user in self.header.operators:
                return Identity(user, WebRole.OPERATOR)
            if user in self.header.viewers:
                return Identity(user, WebRole.VIEWER)
        return ANONYMOUS
