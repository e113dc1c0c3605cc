"""Who may do what through the control socket: the peer's credentials (SO_PEERCRED)
and the groups named in the logical host's settings.

The socket itself is reachable by every local user (docs/control.md, ADR 0014); this
module is the gate. Group membership is read from the group database at each request,
so adding a user to a group, or removing one, takes effect at the next request,
without a new login and without restarting the daemon.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

from ajs3.errors import AjsError, Code
from ajs3.service.protocol import Access, Op
from ajs3.settings import Settings

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a control connection, as the kernel saw it
    when it connected."""

    pid: int
    uid: int
    gid: int
    user: str


def peer_of(conn: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return Peer(pid, uid, gid, user_name(uid))


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Role(IntEnum):
    """What a peer may do; each role may do what the ones below it may."""

    #: may only ask whether the daemon is alive (ping)
    NONE = 0
    #: member of the viewers group: may read (why)
    VIEWER = 1
    #: member of the operators group: may change state (define, entry, hold, ...)
    OPERATOR = 2
    #: root or the daemon's own user: may also stop the logical host
    ADMIN = 3


_NEEDED = {
    Access.PUBLIC: Role.NONE,
    Access.READ: Role.VIEWER,
    Access.CHANGE: Role.OPERATOR,
    Access.ADMIN: Role.ADMIN,
}


def in_group(peer: Peer, group: str) -> bool:
    """Whether the peer's user belongs to ``group`` (primary or supplementary)."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return False  # a group that does not exist on this node has no members
    if peer.gid == entry.gr_gid or peer.user in entry.gr_mem:
        return True
    try:
        return pwd.getpwuid(peer.uid).pw_gid == entry.gr_gid
    except KeyError:
        return False


def role_of(peer: Peer, settings: Settings) -> Role:
    if peer.uid in (0, os.geteuid()):
        return Role.ADMIN
    if in_group(peer, settings.operators_group):
        return Role.OPERATOR
    if in_group(peer, settings.viewers_group):
        return Role.VIEWER
    return Role.NONE


def check(op: Op, role: Role, peer: Peer, settings: Settings) -> None:
    """Refuse (AJS3-E309) a request the peer's role does not allow, saying what to do."""
    needed = _NEEDED[op.access]
    if role >= needed:
        return
    who = f"user {peer.user} (uid {peer.uid})"
    if needed is Role.ADMIN:
        hint = "stopping a logical host is for root (under Pacemaker: pcs resource disable)"
    elif needed is Role.OPERATOR:
        hint = (
            f"ask an administrator to add {peer.user} to the group "
            f"{settings.operators_group!r} (operators may change state)"
        )
    else:
        hint = (
            f"ask an administrator to add {peer.user} to the group "
            f"{settings.viewers_group!r} (read only) or {settings.operators_group!r}"
        )
    raise AjsError(
        f"{who} may not {op.name} on logical host {settings.lhost} (role: {role.name.lower()})",
        code=Code.PERMISSION_DENIED,
        hint=hint,
    )
