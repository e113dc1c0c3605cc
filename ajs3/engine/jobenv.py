"""Who a job runs as and the environment it starts with (docs/security.md).

A job is somebody else's program: it gets nothing of the daemon's environment (which
may hold the service's secrets) but what the settings pass through by name, and it
runs as root only when the logical host's settings allow it. Everything here is a
pure function of its arguments (plus the password database), so it is unit-tested
without starting anything.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ajs3.definitions.units import DefinitionSet
from ajs3.errors import AjsError, Code, Problem
from ajs3.model import UnitKind
from ajs3.settings import Settings

#: The PATH of every job that does not set its own (in ``env``) and whose settings do
#: not pass the daemon's through: the system directories, nothing writable by users.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class JobUserError(AjsError, ValueError):
    """A job's user cannot be used: unknown, or root where root is not allowed."""


@dataclass(frozen=True)
class JobUser:
    """The OS user a job runs as, from the password database."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str

    @staticmethod
    def of(entry: pwd.struct_passwd) -> JobUser:
        return JobUser(
            entry.pw_name,
            entry.pw_uid,
            entry.pw_gid,
            entry.pw_dir or "/",
            entry.pw_shell or "/bin/sh",
        )

    @staticmethod
    def of_uid(uid: int) -> JobUser:
        """The user of ``uid``; a user without an entry (a container) gets HOME=/."""
        try:
            return JobUser.of(pwd.getpwuid(uid))
        except KeyError:
            return JobUser(str(uid), uid, uid, "/", "/bin/sh")


def _lookup(name: str, what: str) -> JobUser:
    try:
        return JobUser.of(pwd.getpwnam(name))
    except KeyError:
        raise JobUserError(
            f"no such user {name!r} ({what})",
            code=Code.BAD_VALUE,
            hint="create the user on every node of the cluster, or fix the name",
        ) from None


def _root_refused(who: str) -> JobUserError:
    return JobUserError(
        f"{who} would run as root and this logical host does not allow root jobs",
        code=Code.ROOT_JOB_REFUSED,
        hint="give the job an unprivileged `user:`, or set `allow_root_jobs: true` in the "
        "logical host's ajs3.yaml if it really must run as root",
    )


def resolve_user(
    user: str | None, *, daemon_uid: int, default_user: str, allow_root: bool, unit: str = "the job"
) -> JobUser:
    """The user a job runs as.

    - ``user:`` given: that user; root (uid 0, whatever its name) only if allowed.
    - no ``user:`` and the daemon runs as root: root if allowed, else ``default_user``
      (which must not be root itself unless allowed).
    - no ``user:`` and an unprivileged daemon: the daemon's own user.

    Raises JobUserError (AJS3-E313 for root, AJS3-E108 for an unknown user).
    """
    if user is not None:
        found = _lookup(user, f"user of {unit}")
        if found.uid == 0 and not allow_root:
            raise _root_refused(f"{unit} (user: {user})")
        return found
    if daemon_uid != 0:
        return JobUser.of_uid(daemon_uid)
    if allow_root:
        return JobUser.of_uid(0)
    found = _lookup(default_user, "default_user of the logical host")
    if found.uid == 0:
        raise _root_refused(f"{unit} (no user:, default_user {default_user})")
    return found


def job_environment(
    user: JobUser,
    job_env: Mapping[str, str],
    daemon_env: Mapping[str, str],
    passthrough: Iterable[str],
) -> dict[str, str]:
    """The whole environment of a job, in this order (a later one wins):

    1. ``PATH`` = :data:`SAFE_PATH`;
    2. the daemon's variables named in ``passthrough`` (settings ``env_passthrough``;
       naming PATH passes the daemon's PATH);
    3. ``HOME``, ``USER``, ``LOGNAME``, ``SHELL`` of the job's user;
    4. ``job_env``: the job's own ``env`` with its run identity (``AJS3_*``) on top,
       as the scheduler builds it.

    Nothing else of ``daemon_env`` gets through.
    """
    env = {"PATH": SAFE_PATH}
    for name in passthrough:
        if name in daemon_env and not name.startswith("AJS3_"):
            env[name] = daemon_env[name]
    env.update({"HOME": user.home, "USER": user.name, "LOGNAME": user.name, "SHELL": user.shell})
    env.update(job_env)
    return env


def check_job_users(defs: DefinitionSet, settings: Settings, daemon_uid: int = 0) -> list[Problem]:
    """Every job of ``defs`` that would run as root under ``settings`` where root is
    not allowed, as problems with the job's ``file:line`` (AJS3-E313), for a daemon
    running as ``daemon_uid`` (root unless told). Unknown users are not problems here:
    a user may exist only on the node that runs the job."""
    default_user, allow_root = settings.default_user, settings.allow_root_jobs
    problems: list[Problem] = []
    for root in defs.jobnets.values():
        for unit in root.walk():
            if unit.kind is not UnitKind.JOB:
                continue  # a jobnet, a judgment or an OR job: nothing runs
            try:
                resolve_user(
                    unit.user,
                    daemon_uid=daemon_uid,
                    default_user=default_user,
                    allow_root=allow_root,
                    unit=unit.path,
                )
            except JobUserError as exc:
                if exc.code is not Code.ROOT_JOB_REFUSED:
                    continue
                file, _, line = unit.source.rpartition(":")
                problems.append(
                    Problem(
                        Code.ROOT_JOB_REFUSED,
                        file or unit.source or unit.path,
                        int(line) if line.isdigit() else 0,
                        f"{exc.message} ({exc.hint})",
                    )
                )
    return problems
