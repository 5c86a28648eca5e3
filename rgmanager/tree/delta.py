"""What changed between two configurations, and what that means for services.

A node needs a stop/start when its own resolved parameters (other than
``reconfig`` ones), flags or children changed; a change limited to
``reconfig`` parameters asks the agent to ``reconfig`` instead (docs/rgmanager.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Forest, Node, Resource
from .order import start_order, stop_order


@dataclass
class ServiceDelta:
    name: str
    stop: list[str] = field(default_factory=list)  # node names, old tree, stop order
    start: list[str] = field(default_factory=list)  # node names, new tree, start order
    reconfig: list[str] = field(default_factory=list)


@dataclass
class Delta:
    resources_added: list[str] = field(default_factory=list)
    resources_removed: list[str] = field(default_factory=list)
    resources_changed: dict[str, dict[str, tuple[str | None, str | None]]] = field(
        default_factory=dict)
    services_added: list[str] = field(default_factory=list)
    services_removed: list[str] = field(default_factory=list)
    services_changed: list[ServiceDelta] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.resources_added or self.resources_removed or self.resources_changed
                    or self.services_added or self.services_removed or self.services_changed)

    def as_dict(self) -> dict[str, object]:
        return {
            "resources": {
                "added": self.resources_added,
                "removed": self.resources_removed,
                "changed": {k: {a: list(v) for a, v in d.items()}
                            for k, d in self.resources_changed.items()},
            },
            "services": {
                "added": self.services_added,
                "removed": self.services_removed,
                "changed": [{"name": s.name, "stop": s.stop, "start": s.start,
                             "reconfig": s.reconfig} for s in self.services_changed],
            },
        }


def _attr_changes(old: Resource, new: Resource) -> dict[str, tuple[str | None, str | None]]:
    keys = set(old.attrs) | set(new.attrs) | set(old.inherits) | set(new.inherits)
    out: dict[str, tuple[str | None, str | None]] = {}
    for k in sorted(keys):
        a = old.attrs.get(k, old.inherits.get(k) and f"(inherit {old.inherits[k]})")
        b = new.attrs.get(k, new.inherits.get(k) and f"(inherit {new.inherits[k]})")
        if a != b:
            out[k] = (a, b)
    return out


def _flags(n: Node) -> tuple[object, ...]:
    """What a change of needs a restart, beyond the agent's parameters.

    A top-level node's restart counters are not flags: the builder copies them
    from the service's own ``max_restarts``/``restart_expire_time`` parameters,
    which the parameter comparison already judges (they are ``reconfig`` on
    the service agent, so changing them must not restart the service).
    """
    counters: tuple[object, ...] = (n.max_restarts, n.restart_expire_time) \
        if n.parent is not None else ()
    return (n.independent, n.noncritical, n.enforce_timeouts, *counters,
            n.max_failures, n.failure_expire_time, n.actions)


def _compare(old: Node, new: Node, sd: ServiceDelta) -> None:
    old_p, new_p = old.params(), new.params()
    changed = {k for k in set(old_p) | set(new_p) if old_p.get(k) != new_p.get(k)}
    reconfig_only = bool(changed) and all(
        (p := new.rule.param(k)) is not None and p.reconfig for k in changed)
    if old.type != new.type or (changed and not reconfig_only) or _flags(old) != _flags(new):
        sd.stop.extend(n.name for n in stop_order(old))
        sd.start.extend(n.name for n in start_order(new))
        return
    if reconfig_only:
        sd.reconfig.append(new.name)
    old_children = {c.name: c for c in old.children}
    new_children = {c.name: c for c in new.children}
    for name, c in old_children.items():
        if name not in new_children:
            sd.stop.extend(n.name for n in stop_order(c))
    for name, c in new_children.items():
        if name not in old_children:
            sd.start.extend(n.name for n in start_order(c))
        else:
            _compare(old_children[name], c, sd)


def diff(old: Forest, new: Forest) -> Delta:
    d = Delta()
    old_res = {r.name: r for r in old.resources}
    new_res = {r.name: r for r in new.resources}
    d.resources_added = [n for n in new_res if n not in old_res]
    d.resources_removed = [n for n in old_res if n not in new_res]
    for name in new_res:
        if name in old_res:
            ch = _attr_changes(old_res[name], new_res[name])
            if ch:
                d.resources_changed[name] = ch
    old_svc = {s.name: s for s in old.services}
    new_svc = {s.name: s for s in new.services}
    d.services_added = [n for n in new_svc if n not in old_svc]
    d.services_removed = [n for n in old_svc if n not in new_svc]
    for name, s in new_svc.items():
        if name in old_svc:
            sd = ServiceDelta(name)
            _compare(old_svc[name], s, sd)
            if sd.stop or sd.start or sd.reconfig:
                d.services_changed.append(sd)
    return d
