"""The settings of one logical host: ``<datadir>/ajs3.yaml``, read in one place.

Every key is optional; an absent file means every default. Unknown keys and values
of the wrong type are refused with AJS3-E206 and the file's path, so a typo never
turns into a silent default on the night it matters.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ajs3 import datadir as dd
from ajs3 import keep as kp
from ajs3.errors import AjsError, Code
from ajs3.exechost_config import ExecHosts, parse_exechosts
from ajs3.fileperms import refuse_unsafe
from ajs3.notify_routes import Route, parse_routes
from ajs3.web_settings import WebSettings, parse_web

#: The file name of the settings inside a data directory.
SETTINGS_FILE = dd.SETTINGS

#: Variables of the daemon's environment that reach jobs unless the settings say
#: otherwise (``env_passthrough``). Everything else of the daemon's environment is
#: kept from jobs: it may hold secrets of the service, not of the job's user.
DEFAULT_PASSTHROUGH = ("LANG", "LC_ALL", "TZ")

#: A settings file is a few lines; anything larger is not one.
MAX_BYTES = 64 * 1024


@dataclass
class Settings:
    """What a logical host's settings file may set, with the defaults."""

    lhost: str
    datadir: Path
    node: str = ""
    #: at most this many jobs of the logical host run at once (None: no limit)
    host_concurrency: int | None = None
    #: members of this group may change state through the control socket
    operators_group: str = "ajs3-operators"
    #: members of this group may only read (show, log, plan, status)
    viewers_group: str = "ajs3-viewers"
    #: a job without ``user:`` runs as this user when the daemon runs as root
    default_user: str = "nobody"
    #: whether a job may run as root (``user: root``, or a root default_user)
    allow_root_jobs: bool = False
    #: names of the daemon's environment variables that jobs receive
    env_passthrough: tuple[str, ...] = field(default=DEFAULT_PASSTHROUGH)
    #: where notifications go (docs/notifications.md)
    notify: tuple[Route, ...] = ()
    #: the history a jobnet without ``keep`` of its own keeps (docs/retention.md)
    keep: kp.Keep = field(default_factory=lambda: kp.Keep(runs=kp.DEFAULT_RUNS))
    #: seconds between two background purge rounds
    purge_interval: float = kp.DEFAULT_PURGE_INTERVAL
    #: bytes kept of each of a job's stdout and stderr (a job's output_limit wins)
    output_limit: int = kp.DEFAULT_OUTPUT_LIMIT
    #: how `ajs3 web` listens and whom it lets in (docs/web.md)
    web: WebSettings = field(default_factory=WebSettings)
    #: execution hosts, host groups and exechost_timeout (docs/exechosts.md)
    exechosts: ExecHosts = field(default_factory=ExecHosts)


_KEYS: dict[str, str] = {
    "host_concurrency": "an integer >= 1",
    "operators_group": "a group name",
    "viewers_group": "a group name",
    "default_user": "a user name",
    "allow_root_jobs": "true or false",
    "env_passthrough": "a list of environment variable names",
    "notify": "a list of routes (docs/notifications.md)",
    "keep": "a mapping with runs (1 to 999) and/or days (a number above 0), or null",
    "purge_interval": f"a number of seconds from {kp.PURGE_INTERVAL_MIN:g} to "
    f"{kp.PURGE_INTERVAL_MAX:g}",
    "output_limit": f"an integer number of bytes from {kp.OUTPUT_LIMIT_MIN} to "
    f"{kp.OUTPUT_LIMIT_MAX}",
    "web": "a mapping (docs/web.md)",
    "execution_hosts": "a mapping of name: {destination, user, port, ...} (docs/exechosts.md)",
    "host_groups": "a mapping of name: {members, distribution} (docs/exechosts.md)",
    "exechost_timeout": "a number of seconds",
}


def _bad(path: Path, key: str) -> AjsError:
    return AjsError(
        f"{path}: {key} must be {_KEYS[key]}",
        code=Code.SETTINGS,
        hint=f"fix {key} in {path}, then start the logical host again",
    )


def _name(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or ":" in value:
        raise _bad(path, key)
    return value


def parse(data: Any, path: Path, settings: Settings) -> Settings:
    """Check the mapping read from ``path`` and set its values on ``settings``."""
    if data is None:
        return settings
    if not isinstance(data, dict):
        raise AjsError(f"{path}: settings must be a mapping of key: value", code=Code.SETTINGS)
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise AjsError(
            f"{path}: unknown settings {unknown}",
            code=Code.SETTINGS,
            hint="known: " + ", ".join(sorted(_KEYS)),
        )
    if "host_concurrency" in data:
        limit = data["host_concurrency"]
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise _bad(path, "host_concurrency")
        settings.host_concurrency = limit
    for key in ("operators_group", "viewers_group", "default_user"):
        if key in data:
            setattr(settings, key, _name(path, key, data[key]))
    if "allow_root_jobs" in data:
        if not isinstance(data["allow_root_jobs"], bool):
            raise _bad(path, "allow_root_jobs")
        settings.allow_root_jobs = data["allow_root_jobs"]
    if "env_passthrough" in data:
        names = data["env_passthrough"]
        if not isinstance(names, list) or not all(
            isinstance(n, str) and n.isidentifier() for n in names
        ):
            raise _bad(path, "env_passthrough")
        settings.env_passthrough = tuple(names)
    if "notify" in data:
        settings.notify = parse_routes(data["notify"], path)
        for route in settings.notify:
            if route.user == "root" and not settings.allow_root_jobs:
                raise AjsError(
                    f"{path}: notify route {route.name!r}: user root needs allow_root_jobs",
                    code=Code.SETTINGS,
                    hint="run the command as an unprivileged user, or allow root jobs",
                )
    _retention(data, path, settings)
    if "web" in data:
        settings.web = parse_web(data["web"], path)
    settings.exechosts = parse_exechosts(data, path)
    return settings


def _retention(data: dict[Any, Any], path: Path, settings: Settings) -> None:
    """keep, purge_interval and output_limit (docs/retention.md)."""
    if "keep" in data:
        got = kp.Keep() if data["keep"] is None else kp.check_keep(data["keep"])
        if isinstance(got, str):
            raise AjsError(
                f"{path}: keep must be {got}",
                code=Code.SETTINGS,
                hint=f"fix keep in {path}, e.g. keep: {{runs: 30, days: 90}}",
            )
        settings.keep = got
    if "purge_interval" in data:
        value = data["purge_interval"]
        if not (kp.is_int(value) or isinstance(value, float)) or not (
            kp.PURGE_INTERVAL_MIN <= value <= kp.PURGE_INTERVAL_MAX
        ):
            raise _bad(path, "purge_interval")
        settings.purge_interval = float(value)
    if "output_limit" in data:
        value = data["output_limit"]
        if not kp.is_int(value) or not kp.OUTPUT_LIMIT_MIN <= value <= kp.OUTPUT_LIMIT_MAX:
            raise _bad(path, "output_limit")
        settings.output_limit = value


def load_settings(datadir: Path, lhost: str) -> Settings:
    """The settings of the logical host in ``datadir`` (defaults without a file)."""
    settings = Settings(lhost=lhost, datadir=datadir, node=socket.gethostname())
    path = datadir / SETTINGS_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return settings
    except OSError as exc:
        raise AjsError(f"{path}: cannot read settings: {exc}", code=Code.SETTINGS) from exc
    # The settings decide who may run jobs as whom: judged on the file opened, they
    # must be the daemon's (or root's) alone (AJS3-E114).
    with os.fdopen(fd, "rb") as f:
        refuse_unsafe(path, os.fstat(f.fileno()))
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise AjsError(f"{path}: settings larger than {MAX_BYTES} bytes", code=Code.SETTINGS)
    try:
        data = yaml.safe_load(raw.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AjsError(f"{path}: cannot read settings: {exc}", code=Code.SETTINGS) from exc
    return parse(data, path, settings)
