"""The replicated service state table, as pure data.

Every node applies the same ordered deliveries to the same table through
the planner, so everything here is immutable and deterministic: no clocks
(times come inside events), no I/O. ``to_json``/``from_json`` give the
snapshot a joining node receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


def service_name(name: str) -> str:
    """Table keys are ``type:name``; a bare name means a service, as in
    rgmanager's tools (``web`` is ``service:web``)."""
    return name if ":" in name else f"service:{name}"


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    FAILED = "failed"
    UNINITIALIZED = "uninitialized"
    RECOVERING = "recovering"
    DISABLED = "disabled"


#: States in which a service occupies its owner.
RUNNING_STATES = (State.STARTING, State.STARTED, State.STOPPING)

#: rgmanager's numeric state codes (clustat -x, clustat -s exit status).
STATE_CODES: Mapping[State, int] = MappingProxyType({
    State.STOPPED: 110, State.STARTING: 111, State.STARTED: 112, State.STOPPING: 113,
    State.FAILED: 114, State.UNINITIALIZED: 115, State.RECOVERING: 118, State.DISABLED: 119,
})

class AfterStop(StrEnum):
    """What follows when a stop completes. Kept in the table so that every
    node knows the plan even if the stopping node dies; a ``StrEnum`` so the
    JSON snapshot keeps the plain words."""

    STOPPED = "stopped"  # stay stopped
    DISABLED = "disabled"  # stay down until enabled
    RESTART = "restart"  # start again on the same node (recovery policy restart)
    RELOCATE = "relocate"  # start on ``target`` or the best other node
    RECOVER = "recover"  # a start failed: try the next node not yet ``tried``


@dataclass(frozen=True)
class ServiceState:
    name: str
    state: State = State.UNINITIALIZED
    owner: str | None = None
    last_owner: str | None = None
    restarts: tuple[float, ...] = ()  # times of policy restarts still inside the window
    last_transition: float = 0.0
    frozen: bool = False
    partial: bool = False
    disabled_parts: tuple[str, ...] = ()  # paths of non-critical parts left stopped
    part_restarts: tuple[tuple[str, tuple[float, ...]], ...] = ()  # subtree path -> times
    after_stop: AfterStop = AfterStop.STOPPED  # meaningful while stopping
    target: str | None = None  # where to start after the stop (relocate)
    tried: tuple[str, ...] = ()  # nodes that failed this service during one recovery
    relocating_from: str | None = None  # owner a relocation started from (fallback)
    request: str | None = None  # id of the user request waiting for this service
    request_origin: str | None = None
    # Stopped on purpose (``clusvcadm -s``) or after every node failed it: not
    # started again by service events, only by the next membership change or a
    # request (rgmanager's eval_groups on node events).
    held: bool = False
    # Requests that arrived while another was being carried out, oldest first
    # (JSON payloads of planner Request events; rgmanager queued them too).
    queued: tuple[str, ...] = ()

    @property
    def code(self) -> int:
        return STATE_CODES[self.state]

    @property
    def running(self) -> bool:
        """Occupies its owner (for exclusivity and relocation)."""
        return self.state in RUNNING_STATES and self.owner is not None

    @property
    def occupies(self) -> str | None:
        """The node this service may be running on: its owner, or for a service
        whose stop failed, the node where it failed (it may still run there, so
        an exclusive service must not go there, nor anything go next to it)."""
        if self.running:
            return self.owner
        if self.state == State.FAILED:
            return self.last_owner
        return None

    def part_restart_times(self, path: str) -> tuple[float, ...]:
        for p, times in self.part_restarts:
            if p == path:
                return times
        return ()

    def with_part_restarts(self, path: str, times: tuple[float, ...]) -> ServiceState:
        rest = tuple((p, t) for p, t in self.part_restarts if p != path)
        return replace(self, part_restarts=rest + (((path, times),) if times else ()))

    def moved(self, state: State, now: float, owner: str | None | bool = True,
              **changes: Any) -> ServiceState:
        """A state transition: ``owner=True`` keeps the owner; a stopped-like
        state records the last owner and clears the owner."""
        new_owner = self.owner if owner is True else (owner or None)
        last_owner = self.last_owner
        if state in (State.STOPPED, State.DISABLED, State.FAILED, State.RECOVERING):
            if self.owner is not None:
                last_owner = self.owner
            new_owner = None
        elif new_owner is not None and new_owner != self.owner and self.owner is not None:
            last_owner = self.owner
        return replace(self, state=state, owner=new_owner, last_owner=last_owner,
                       last_transition=now, **changes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "part_restarts":
                v = [[p, list(t)] for p, t in v]
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceState:
        kw = dict(data)
        kw["state"] = State(kw["state"])
        kw["after_stop"] = AfterStop(kw.get("after_stop", AfterStop.STOPPED))
        for name in ("restarts", "disabled_parts", "tried", "queued"):
            kw[name] = tuple(kw.get(name, ()))
        kw["part_restarts"] = tuple((p, tuple(t)) for p, t in kw.get("part_restarts", ()))
        return cls(**kw)


@dataclass(frozen=True)
class Table:
    """Service name (``service:web``) -> state; immutable.

    ``members`` is the membership the table last saw; every node derives who
    joined and who left from it, so all nodes agree even after a partition
    merge, where each side's own view of "joined" differs.
    """

    services: Mapping[str, ServiceState] = field(
        default_factory=lambda: MappingProxyType({}))
    members: tuple[str, ...] = ()

    def get(self, name: str) -> ServiceState:
        return self.services.get(name) or ServiceState(name)

    def __iter__(self) -> Iterator[ServiceState]:
        return iter(self.services[k] for k in sorted(self.services))

    def __contains__(self, name: object) -> bool:
        return name in self.services

    def put(self, *states: ServiceState) -> Table:
        d = dict(self.services)
        for s in states:
            d[s.name] = s
        return Table(MappingProxyType(d), self.members)

    def only(self, names: Iterable[str]) -> Table:
        """Keep the given services (adding uninitialized ones), drop the rest."""
        return Table(MappingProxyType({n: self.get(n) for n in names}), self.members)

    def with_members(self, members: Iterable[str]) -> Table:
        return Table(self.services, tuple(members))

    def to_json(self) -> dict[str, Any]:
        return {"services": {name: s.to_json() for name, s in sorted(self.services.items())},
                "members": list(self.members)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Table:
        """Also reads the older flat form ``{name: state}`` (no members)."""
        nested = data.get("services")
        services: Mapping[str, Any] = nested if isinstance(nested, Mapping) else data
        members = tuple(data.get("members", ())) if isinstance(nested, Mapping) else ()
        return cls(MappingProxyType({k: ServiceState.from_json(v)
                                     for k, v in services.items()}), members)
