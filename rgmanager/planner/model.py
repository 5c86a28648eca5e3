"""What the planner needs to know about services, taken from config + trees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from ..agents.rules import expand_time
from ..config.model import ClusterConfig, FailoverDomain
from ..config.parser import parse_bool
from ..state import service_name
from ..tree.model import Forest, Node


@dataclass(frozen=True)
class PartSpec:
    """One resource use inside a service, with its recovery flags."""

    path: str
    name: str
    independent: bool = False
    noncritical: bool = False
    max_restarts: int = 0
    restart_expire_time: int = 0
    parent: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # "service:web"
    domain: FailoverDomain | None = None
    autostart: bool = True
    exclusive: bool = False
    recovery: str = "restart"
    max_restarts: int = 0
    restart_expire_time: int = 0
    depend: str | None = None  # "service:db"
    parts: Mapping[str, PartSpec] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class PlanModel:
    """What the planner knows of the configuration.

    ``fencing``: a member lost while it occupies a service is fenced before
    its services run elsewhere (the table's ``awaiting_fence``; see
    :mod:`.fencing`). Off, a lost member is taken as fenced at once: for
    ``rg_test simulate --no-fencing`` and planner tests that are about
    something else. The daemon always plans with it on.
    """

    services: Mapping[str, ServiceSpec]
    node_ids: Mapping[str, int]  # every configured node
    fencing: bool = False

    def nodeid(self, node: str) -> int:
        return self.node_ids.get(node, 1 << 30)

    # Lookups the planner makes on every event, worked out once per model.
    @cached_property
    def node_order(self) -> tuple[str, ...]:
        """The configured nodes by node id (name order among equal ids)."""
        return tuple(sorted(sorted(self.node_ids), key=self.nodeid))

    @cached_property
    def exclusive(self) -> frozenset[str]:
        """Services that must run alone on their node."""
        return frozenset(n for n, s in self.services.items() if s.exclusive)

    @cached_property
    def with_depend(self) -> tuple[str, ...]:
        """Services that depend on another one, in name order."""
        return tuple(sorted(n for n, s in self.services.items() if s.depend))

    @cached_property
    def dependants(self) -> Mapping[str, tuple[str, ...]]:
        """Service -> the services that depend on it, in name order."""
        out: dict[str, list[str]] = {}
        for n in self.with_depend:
            depend = self.services[n].depend
            assert depend is not None
            out.setdefault(depend, []).append(n)
        return MappingProxyType({k: tuple(v) for k, v in out.items()})

    @classmethod
    def build(cls, config: ClusterConfig, forest: Forest, *, fencing: bool = False
              ) -> PlanModel:
        """The model of a loaded configuration. ``fencing`` is the caller's
        choice (the daemon and the dry run turn it on)."""
        services = {}
        for top in forest.services:
            if top.type != "service":
                continue
            spec = _service_spec(config, top)
            services[spec.name] = spec
        return cls(MappingProxyType(services),
                   MappingProxyType({n.name: n.nodeid for n in config.nodes}), fencing)


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return parse_bool(value)


def _service_spec(config: ClusterConfig, top: Node) -> ServiceSpec:
    attr = top.attr
    domain = config.rm.domain(attr("domain") or "") if attr("domain") else None
    depend = attr("depend")
    if depend:
        depend = service_name(depend)
    parts = {}
    for n in top.walk():
        if n is top:
            continue
        parts[n.path] = PartSpec(n.path, n.name, n.independent, n.noncritical,
                                 n.max_restarts, n.restart_expire_time,
                                 n.parent.path if n.parent is not None and n.parent is not top
                                 else None)
    return ServiceSpec(
        name=top.name,
        domain=domain,
        autostart=_bool(attr("autostart"), True),
        exclusive=_bool(attr("exclusive"), False),
        recovery=attr("recovery") or "restart",
        max_restarts=int(attr("max_restarts") or 0),
        restart_expire_time=expand_time(attr("restart_expire_time")),
        depend=depend or None,
        parts=MappingProxyType(parts),
    )
