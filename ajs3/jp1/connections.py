"""JP1 jobnet connectors (``ty=nc``) and the connection settings of root jobnets, to
ajs3 connectors (``type: connector``).

JP1 splits a connection in two (Command Reference, "Specifying the definition of a
jobnet connector" and "jobnet definition"): the connector names its connection
destination root jobnet (``ncr``), and that root jobnet names its connector and how
their generations pair (``ncl=y``: execution order control on; ``ncn``: the
connector's full name; ``ncs=y`` synchronous, the same execution date, ``ncs=n``
asynchronous). ajs3 keeps both on the connector: ``waits_for`` from ``ncr``, ``match``
from the destination's ``ncs`` (``scheduling-day`` for y, ``latest`` for n, JP1's
default). Connections to other scheduler services or hosts (``ncex=y``, ``nchn``,
``ncsv``) are not mapped: an ajs3 connector waits on its own logical host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ajs3.jp1 import catalog
from ajs3.jp1.parser import Jp1Unit, Param, unquote

#: Parameters of a connection destination (a root jobnet) read here.
DESTINATION_KEYS = ("ncl", "ncn", "ncs", "ncex", "nchn", "ncsv")
#: Parameters of a jobnet connector read here.
CONNECTOR_KEYS = ("ncr", "ncex", "nchn", "ncsv")


class Reporter(Protocol):
    def note(self, line: int, message: str) -> None: ...
    def invalid(self, unit: Jp1Unit, param: Param, why: str) -> None: ...
    def unmapped(self, unit: Jp1Unit, param: Param, why: str = "") -> None: ...


#: Marks a connector mapping that :func:`prune` takes out.
_SKIP = "\0skip"


def prune(units: list[dict[str, Any]]) -> None:
    """Take out the connectors skipped by :meth:`Connections.pair`, and their names from
    the ``after`` of their siblings (in every jobnet of ``units``, at any depth)."""
    gone = {u["name"] for u in units if u.get(_SKIP)}
    units[:] = [u for u in units if not u.get(_SKIP)]
    for u in units:
        if gone and "after" in u:
            u["after"] = [a for a in u["after"] if a not in gone]
            if not u["after"]:
                del u["after"]
        if "units" in u:
            prune(u["units"])


@dataclass
class _Destination:
    root: str
    match: str
    line: int
    used: bool = False


@dataclass
class Connections:
    """The connectors and destinations of one file, paired once it is all read."""

    connectors: list[tuple[str, dict[str, Any], Jp1Unit]] = field(default_factory=list)
    destinations: dict[str, _Destination] = field(default_factory=dict)
    #: paths of the units directly in a job group, and of those imported as root jobnets
    seen: set[str] = field(default_factory=set)
    imported: set[str] = field(default_factory=set)

    def _remote(self, rep: Reporter, unit: Jp1Unit) -> None:
        ncex = unit.param("ncex")
        if ncex is not None and ncex.value not in catalog.YES_NO:
            rep.invalid(unit, ncex, "expected ncex=y or ncex=n")
        remote = ncex is not None and ncex.value == "y"
        for key in ("nchn", "ncsv"):
            param = unit.param(key)
            if param is not None and not remote:
                rep.invalid(unit, param, f"{key} needs ncex=y (JP1 refuses it without)")
            elif param is not None:
                rep.unmapped(unit, param, "an ajs3 connector waits on its own logical host")
        if remote and ncex is not None:
            rep.unmapped(unit, ncex, "an ajs3 connector waits on its own logical host")

    def connector(self, rep: Reporter, unit: Jp1Unit, path: str) -> dict[str, Any] | None:
        """A ``ty=nc`` unit at ``path``: its mapping (``match`` is set by :meth:`pair`),
        or None for one without a destination."""
        self._remote(rep, unit)
        ncr = unit.param("ncr")
        if ncr is None:
            rep.note(
                unit.line,
                f"jobnet connector {unit.name!r} has no ncr= (its connection destination) "
                "and connects to nothing; skipped",
            )
            return None
        target = unquote(ncr.value)
        out: dict[str, Any] = {
            "name": unit.name,
            "type": "connector",
            "waits_for": target if target.startswith("/") else "/" + target,
        }
        self.connectors.append((path, out, unit))
        return out

    def destination(self, rep: Reporter, unit: Jp1Unit, path: str) -> None:
        """The connection settings of root jobnet ``path`` (``ncl``, ``ncn``, ``ncs``...)."""
        ncl, ncn, ncs = unit.param("ncl"), unit.param("ncn"), unit.param("ncs")
        for param in (ncl, ncs):
            if param is not None and param.value not in catalog.YES_NO:
                rep.invalid(unit, param, f"expected {param.key}=y or {param.key}=n")
                return
        if ncl is None or ncl.value != "y":
            for param in (ncn, ncs):
                if param is not None:
                    rep.note(
                        param.line,
                        f"{param.key}={param.value} of {unit.name!r} has no effect "
                        "without ncl=y; ignored",
                    )
            return
        if ncn is None:
            rep.note(ncl.line, f"ncl=y of {unit.name!r} names no connector (ncn=); ignored")
            return
        self._remote(rep, unit)
        name = unquote(ncn.value)
        name = name if name.startswith("/") else "/" + name
        match = "scheduling-day" if ncs is not None and ncs.value == "y" else "latest"
        self.destinations[name] = _Destination(path, match, ncn.line)

    def pair(self, rep: Reporter) -> None:
        """Give each connector the ``match`` its destination says; a connector no root
        jobnet names in ``ncn`` (or one whose destination names another) waits for the
        latest run, JP1's default, with a note."""
        for path, out, unit in self.connectors:
            target = out["waits_for"]
            if target in self.seen and target not in self.imported:
                rep.note(
                    unit.line,
                    f"jobnet connector {path} waits for {target}, which is not imported "
                    "(see its own line); the connector is skipped",
                )
                out[_SKIP] = True
                continue
            found = self.destinations.get(path)
            if found is not None and found.root == out["waits_for"]:
                found.used = True
                out["match"] = found.match
                continue
            out["match"] = "latest"
            rep.note(
                unit.line,
                f"jobnet connector {path}: its destination {out['waits_for']} does not name "
                "it (ncl=y; ncn=...); imported with match: latest (JP1's ncs=n)",
            )
        for name, found in self.destinations.items():
            if not found.used:
                rep.note(
                    found.line,
                    f"ncn={name} of {found.root} names no jobnet connector that connects to "
                    "it; ignored",
                )
