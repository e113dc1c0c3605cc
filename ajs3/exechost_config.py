"""Execution hosts and host groups in a logical host's settings (``ajs3.yaml``).

::

    execution_hosts:
      db1: {destination: 10.0.0.5, user: ajs3x, port: 22,
            identity_file: /etc/ajs3/LHOST/id_ed25519,
            known_hosts: /etc/ajs3/LHOST/known_hosts, max_jobs: 20,
            follow_output: true}
    host_groups:
      batch: {members: [db1, db2], distribution: least_busy}
    exechost_timeout: 600

A job's ``host:`` names one of either (docs/exechosts.md). Everything is checked
here, a bad value is AJS3-E206 naming the key and the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code

#: A name of an execution host or host group (what ``host:`` says).
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
#: A host name or address to give to ssh; never an option ("-oProxyCommand=...").
DESTINATION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:%-]{0,252}\Z")
#: A remote user name.
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\Z")

DEFAULT_TIMEOUT = 600.0
TIMEOUT_MAX = 7 * 86400.0
MAX_JOBS_MAX = 100_000
MAX_HOSTS = 1000

HOST_KEYS = (
    "destination",
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "max_jobs",
    "follow_output",
)
GROUP_KEYS = ("members", "distribution")


class Distribution(StrEnum):
    """How a host group picks the member for a new job."""

    LEAST_BUSY = "least_busy"
    ROUND_ROBIN = "round_robin"
    FIRST_AVAILABLE = "first_available"


@dataclass(frozen=True)
class ExecHost:
    """One execution host: where ssh connects and how many jobs it takes at once."""

    name: str
    destination: str
    user: str = "ajs3"
    port: int = 22
    identity_file: str | None = None
    known_hosts: str | None = None
    max_jobs: int | None = None
    #: the output of its running jobs is followed (ajs3.exechost.mirror)
    follow_output: bool = True


@dataclass(frozen=True)
class HostGroup:
    name: str
    members: tuple[str, ...]
    distribution: Distribution = Distribution.LEAST_BUSY


@dataclass(frozen=True)
class ExecHosts:
    """The execution hosts and groups of one logical host (empty: every job is local)."""

    hosts: tuple[ExecHost, ...] = ()
    groups: tuple[HostGroup, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def host(self, name: str) -> ExecHost | None:
        return next((h for h in self.hosts if h.name == name), None)

    def group(self, name: str) -> HostGroup | None:
        return next((g for g in self.groups if g.name == name), None)

    def names(self) -> list[str]:
        return sorted([h.name for h in self.hosts] + [g.name for g in self.groups])

    def members(self, name: str) -> tuple[str, ...]:
        """The execution hosts ``name`` stands for (itself, or a group's members)."""
        group = self.group(name)
        if group is not None:
            return group.members
        return (name,) if self.host(name) is not None else ()


def _bad(path: Path, where: str, what: str) -> AjsError:
    return AjsError(
        f"{path}: {where} must be {what}",
        code=Code.SETTINGS,
        hint=f"fix {where} in {path} (docs/exechosts.md), then start the logical host again",
    )


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _bad(path, where, "a mapping of name: settings")
    if len(value) > MAX_HOSTS:
        raise _bad(path, where, f"at most {MAX_HOSTS} entries")
    return value


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _abs_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/") and value.isprintable()


def _host(name: str, data: Any, path: Path) -> ExecHost:
    where = f"execution_hosts.{name}"
    if not NAME_RE.match(name):
        raise _bad(path, f"the name {name!r} in execution_hosts", "letters, digits, _ . -")
    if not isinstance(data, dict):
        raise _bad(path, where, "a mapping with at least destination")
    unknown = sorted(str(k) for k in data if k not in HOST_KEYS)
    if unknown:
        raise _bad(path, where, f"a mapping of {', '.join(HOST_KEYS)} (unknown: {unknown})")
    dest = data.get("destination")
    if not isinstance(dest, str) or not DESTINATION_RE.match(dest):
        raise _bad(path, f"{where}.destination", "a host name or address")
    user = data.get("user", "ajs3")
    if not isinstance(user, str) or not USER_RE.match(user):
        raise _bad(path, f"{where}.user", "a user name")
    port = data.get("port", 22)
    if not _int(port, 1, 65535):
        raise _bad(path, f"{where}.port", "a port number from 1 to 65535")
    for key in ("identity_file", "known_hosts"):
        if data.get(key) is not None and not _abs_path(data[key]):
            raise _bad(path, f"{where}.{key}", "an absolute path")
    max_jobs = data.get("max_jobs")
    if max_jobs is not None and not _int(max_jobs, 1, MAX_JOBS_MAX):
        raise _bad(path, f"{where}.max_jobs", f"an integer from 1 to {MAX_JOBS_MAX}")
    follow = data.get("follow_output", True)
    if not isinstance(follow, bool):
        raise _bad(path, f"{where}.follow_output", "true or false")
    return ExecHost(
        name=name,
        destination=dest,
        user=user,
        port=port,
        identity_file=data.get("identity_file"),
        known_hosts=data.get("known_hosts"),
        max_jobs=max_jobs,
        follow_output=follow,
    )


def _group(name: str, data: Any, path: Path, hosts: dict[str, ExecHost]) -> HostGroup:
    where = f"host_groups.{name}"
    if not NAME_RE.match(name):
        raise _bad(path, f"the name {name!r} in host_groups", "letters, digits, _ . -")
    if name in hosts:
        raise _bad(path, where, "a name that is not also an execution host's")
    if not isinstance(data, dict) or sorted(str(k) for k in data if k not in GROUP_KEYS):
        raise _bad(path, where, "a mapping of members and distribution")
    members = data.get("members")
    if (
        not isinstance(members, list)
        or not members
        or not all(isinstance(m, str) for m in members)
        or len(set(members)) != len(members)
    ):
        raise _bad(path, f"{where}.members", "a list of execution host names, each once")
    missing = [m for m in members if m not in hosts]
    if missing:
        raise _bad(
            path,
            f"{where}.members",
            f"names of execution_hosts ({', '.join(sorted(hosts)) or 'none defined'}); "
            f"not {', '.join(missing)}",
        )
    dist = data.get("distribution", Distribution.LEAST_BUSY.value)
    if dist not in {d.value for d in Distribution}:
        raise _bad(
            path, f"{where}.distribution", "one of " + ", ".join(d.value for d in Distribution)
        )
    return HostGroup(name=name, members=tuple(members), distribution=Distribution(dist))


def parse_exechosts(data: dict[Any, Any], path: Path) -> ExecHosts:
    """``execution_hosts``, ``host_groups`` and ``exechost_timeout`` of a settings
    mapping (absent: none, and the default timeout)."""
    hosts: dict[str, ExecHost] = {}
    raw_hosts = data.get("execution_hosts")
    if raw_hosts is not None:
        for name, value in _mapping(raw_hosts, path, "execution_hosts").items():
            hosts[name] = _host(name, value, path)
    groups: list[HostGroup] = []
    raw_groups = data.get("host_groups")
    if raw_groups is not None:
        for name, value in _mapping(raw_groups, path, "host_groups").items():
            groups.append(_group(name, value, path, hosts))
    timeout = data.get("exechost_timeout", DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= TIMEOUT_MAX
    ):
        raise _bad(
            path, "exechost_timeout", f"a number of seconds above 0, at most {TIMEOUT_MAX:g}"
        )
    return ExecHosts(tuple(hosts.values()), tuple(groups), float(timeout))
