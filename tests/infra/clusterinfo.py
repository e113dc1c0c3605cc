"""What a Pacemaker cluster says about itself, read over a testinfra Host."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Primitive:
    id: str
    agent: str  # class:provider:type, or stonith:type
    params: dict[str, str]


@dataclass
class Cluster:
    """What the cluster says, from one node: configuration (CIB) and status (crm_mon)."""

    nodes: list[str]
    online: list[str]
    dc: str | None
    groups: dict[str, list[Primitive]] = field(default_factory=dict)
    stonith: list[Primitive] = field(default_factory=list)
    started_on: dict[str, list[str]] = field(default_factory=dict)  # resource -> nodes

    def group_node(self, group: str) -> str | None:
        places = {tuple(self.started_on.get(p.id, [])) for p in self.groups[group]}
        if len(places) == 1:
            (only,) = places
            return only[0] if len(only) == 1 else None
        return None

    def first(self, group: str, agent_suffix: str) -> Primitive | None:
        return next((p for p in self.groups[group] if p.agent.endswith(agent_suffix)), None)


def _primitive(p: ET.Element) -> Primitive:
    cls, prov, typ = p.get("class", ""), p.get("provider"), p.get("type", "")
    agent = f"{cls}:{prov}:{typ}" if prov else f"{cls}:{typ}"
    params = {
        nv.get("name", ""): nv.get("value", "")
        for ia in p.findall("instance_attributes")
        for nv in ia.findall("nvpair")
    }
    return Primitive(p.get("id", ""), agent, params)


def read_cluster(host: Any) -> Cluster:
    cib = ET.fromstring(host.check_output("cibadmin --query"))
    mon = ET.fromstring(host.check_output("crm_mon -1 --output-as=xml"))
    dc = mon.find("summary/current_dc")
    cluster = Cluster(
        nodes=[n.get("name", "") for n in mon.findall("nodes/node")],
        online=[n.get("name", "") for n in mon.findall("nodes/node") if n.get("online") == "true"],
        dc=dc.get("name") if dc is not None and dc.get("present") == "true" else None,
    )
    resources = cib.find("configuration/resources")
    assert resources is not None
    for g in resources.findall("group"):
        cluster.groups[g.get("id", "")] = [_primitive(p) for p in g.findall("primitive")]
    cluster.stonith = [
        _primitive(p) for p in resources.findall("primitive") if p.get("class") == "stonith"
    ]
    for r in mon.iter("resource"):
        if r.get("role") == "Started":
            cluster.started_on[r.get("id", "")] = [n.get("name", "") for n in r.iter("node")]
    return cluster
