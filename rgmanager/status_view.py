"""The status view: what the daemon answers to ``status`` and clustat renders.

One function builds it from the pieces the manager holds, so its shape is
written down in one place (``StatusView``, ``MemberView``, ``ServiceView``)
for the daemon and the command-line tools alike. The shape only ever gains
fields: older clustats keep reading newer daemons.

Members: ``online`` is "the membership layer sees the node" (corosync's
member list), ``rgmanager`` is "its rgmanager joined our group"; a node can
be online without rgmanager (daemon not started, or killed), which is what
clustat's ``Online`` and ``rgmanager`` columns tell apart.

Fencing: ``awaiting_fence`` lists the nodes lost while they occupied a
service and not fenced since (the table's set); such a member is marked
``awaiting_fence`` too, and each service carries the planner's ``reason``
(e.g. "awaiting fence of node2" for one that stays ``recovering`` until
then), so an administrator sees *why* nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from .cluster.base import Membership
from .config.model import ClusterConfig
from .planner import PlanModel
from .state import Table


class MemberView(TypedDict):
    name: str
    nodeid: int
    online: bool
    local: bool
    rgmanager: bool
    estranged: bool  # a member that is not a <clusternode> of our configuration
    awaiting_fence: bool  # lost while it occupied a service, not fenced since


class ServiceView(TypedDict):
    name: str
    state: str
    state_code: int
    owner: str | None
    last_owner: str | None
    restarts: int
    last_transition: float
    frozen: bool
    partial: bool
    disabled_parts: list[str]
    reason: str | None  # why it is in its state (e.g. "awaiting fence of node2"), or None


class ClusterView(TypedDict):
    name: str
    config_version: int
    id: int


class StatusView(TypedDict):
    code: int
    cluster: ClusterView
    local: str
    quorate: bool
    stale: bool  # this node's table is not current (waiting for a snapshot)
    members: list[MemberView]
    services: list[ServiceView]
    awaiting_fence: list[str]  # nodes whose services wait for their fence


def members_view(config: ClusterConfig, local: str, membership: Membership,
                 online: Iterable[str], awaiting: Iterable[str] = ()) -> list[MemberView]:
    members = set(membership.members)
    unfenced = set(awaiting)
    up = set(online) | members  # a group member is online by definition
    nodes: list[MemberView] = [
        {"name": n.name, "nodeid": n.nodeid, "online": n.name in up,
         "local": n.name == local, "rgmanager": n.name in members, "estranged": False,
         "awaiting_fence": n.name in unfenced}
        for n in config.nodes]
    known = {n.name for n in config.nodes}
    for extra in sorted(up - known):
        nodes.append({"name": extra, "nodeid": 0, "online": True, "local": extra == local,
                      "rgmanager": extra in members, "estranged": True,
                      "awaiting_fence": extra in unfenced})
    return nodes


def services_view(model: PlanModel, table: Table) -> list[ServiceView]:
    services: list[ServiceView] = []
    for ss in table:
        spec = model.services.get(ss.name)
        parts = spec.parts if spec else {}
        services.append({
            "name": ss.name, "state": ss.state.value, "state_code": ss.code,
            "owner": ss.owner, "last_owner": ss.last_owner,
            "restarts": len(ss.restarts), "last_transition": ss.last_transition,
            "frozen": ss.frozen, "partial": ss.partial,
            "disabled_parts": [parts[p].name if p in parts else p
                               for p in ss.disabled_parts],
            "reason": ss.reason,
        })
    return services


def status_view(config: ClusterConfig, model: PlanModel, table: Table, local: str,
                membership: Membership, online: Iterable[str], *, synced: bool
                ) -> StatusView:
    """The whole ``status`` reply."""
    return {"code": 0,
            "cluster": {"name": config.name, "config_version": config.config_version,
                        "id": 0},
            "local": local, "quorate": membership.quorate, "stale": not synced,
            "members": members_view(config, local, membership, online,
                                    table.awaiting_fence),
            "services": services_view(model, table),
            "awaiting_fence": list(table.awaiting_fence)}
