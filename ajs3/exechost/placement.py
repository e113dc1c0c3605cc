"""Which execution host a new job goes to: a host itself, or a group's member by its
distribution (least busy, round robin, first available). Pure: the caller says how
busy each host is and which are out of reach."""

from __future__ import annotations

from collections.abc import Mapping

from ajs3.exechost_config import Distribution, ExecHosts


def has_room(xh: ExecHosts, name: str, busy: Mapping[str, int]) -> bool:
    host = xh.host(name)
    return host is not None and (host.max_jobs is None or busy.get(name, 0) < host.max_jobs)


def choose(
    xh: ExecHosts,
    name: str,
    busy: Mapping[str, int],
    down: set[str],
    turns: dict[str, int],
) -> str | None:
    """The execution host for a job of ``host: name``, or None while none can take it
    (every candidate out of reach or full: the job waits). ``turns`` keeps each
    round-robin group's next member between calls."""
    group = xh.group(name)
    if group is None:
        return name if name not in down and has_room(xh, name, busy) else None
    ready = [m for m in group.members if m not in down and has_room(xh, m, busy)]
    if not ready:
        return None
    if group.distribution is Distribution.FIRST_AVAILABLE:
        return ready[0]
    if group.distribution is Distribution.ROUND_ROBIN:
        members = group.members
        start = turns.get(name, 0)
        for i in range(len(members)):
            candidate = members[(start + i) % len(members)]
            if candidate in ready:
                turns[name] = (members.index(candidate) + 1) % len(members)
                return candidate
        return None  # pragma: no cover - ready is not empty
    return min(ready, key=lambda m: (busy.get(m, 0), group.members.index(m)))
