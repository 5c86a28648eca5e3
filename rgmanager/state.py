"""The replicated service state table, as pure data.

Every node applies the same ordered deliveries to the same table through
the planner, so everything here is immutable and deterministic: no clocks
(times come inside events), no I/O. ``to_json``/``from_json`` give the
snapshot a joining node receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
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
    # Why the service is in its state when the state alone does not say it
    # (e.g. "awaiting fence of node2" for a ``recovering`` service): shown by
    # clustat and the dry run. Cleared by every transition (:meth:`moved`).
    reason: str | None = None

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
        state records the last owner and clears the owner. The ``reason`` of
        the old state goes unless given anew."""
        new_owner = self.owner if owner is True else (owner or None)
        last_owner = self.last_owner
        if state in (State.STOPPED, State.DISABLED, State.FAILED, State.RECOVERING):
            if self.owner is not None:
                last_owner = self.owner
            new_owner = None
        elif new_owner is not None and new_owner != self.owner and self.owner is not None:
            last_owner = self.owner
        changes.setdefault("reason", None)
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
        """Fields this version does not know (a newer node's snapshot) are
        ignored, so a table can be read across one version step."""
        kw = {k: v for k, v in data.items() if k in _FIELDS}
        kw["state"] = State(kw["state"])
        kw["after_stop"] = AfterStop(kw.get("after_stop", AfterStop.STOPPED))
        for name in ("restarts", "disabled_parts", "tried", "queued"):
            kw[name] = tuple(kw.get(name, ()))
        kw["part_restarts"] = tuple((p, tuple(t)) for p, t in kw.get("part_restarts", ()))
        return cls(**kw)


_FIELDS = frozenset(f.name for f in fields(ServiceState))

#: States in which a service waits to be placed (the planner looks at these after every event).
WAITING_STATES = (State.STOPPED, State.UNINITIALIZED)


@dataclass(frozen=True)
class TableIndex:
    """What the planner looks up by something other than the service name,
    kept so that a planner step costs what it changes, not the whole table."""

    waiting: frozenset[str]  # in WAITING_STATES
    queued: frozenset[str]  # with requests queued
    occupants: Mapping[str, frozenset[str]]  # node -> services that occupy it

    @classmethod
    def of(cls, services: Iterable[ServiceState]) -> TableIndex:
        waiting: set[str] = set()
        queued: set[str] = set()
        occupants: dict[str, set[str]] = {}
        for ss in services:
            if ss.state in WAITING_STATES:
                waiting.add(ss.name)
            if ss.queued:
                queued.add(ss.name)
            node = ss.occupies
            if node is not None:
                occupants.setdefault(node, set()).add(ss.name)
        return cls(frozenset(waiting), frozenset(queued),
                   MappingProxyType({n: frozenset(v) for n, v in occupants.items()}))


class _ServiceLookup:
    """Reading a table by service name: shared by the frozen table and the
    draft a planner step edits."""

    services: Mapping[str, ServiceState]

    def get(self, name: str) -> ServiceState:
        return self.services.get(name) or ServiceState(name)

    def __iter__(self) -> Iterator[ServiceState]:
        return iter(self.services[k] for k in sorted(self.services))

    def __contains__(self, name: object) -> bool:
        return name in self.services


@dataclass(frozen=True)
class Table(_ServiceLookup):
    """Service name (``service:web``) -> state; immutable.

    ``members`` is the membership the table last saw; every node derives who
    joined and who left from it, so all nodes agree even after a partition
    merge, where each side's own view of "joined" differs.

    ``awaiting_fence`` (sorted) holds the members that were lost while they
    occupied a service and have not been fenced (or acknowledged by an
    administrator) since: their services may still run there, so nothing of
    theirs starts elsewhere until the ordered ``NodeFenced`` removes them.
    It is part of the replicated table for the same reason as ``members``:
    a node that joins later must know whom the cluster still waits for.
    """

    services: Mapping[str, ServiceState] = field(
        default_factory=lambda: MappingProxyType({}))
    members: tuple[str, ...] = ()
    awaiting_fence: tuple[str, ...] = ()
    # Built on first use (or handed over by a TableDraft); never part of equality.
    _index: TableIndex | None = field(default=None, compare=False, repr=False)
    # The names ``only`` last fitted this table to (identity), so fitting it
    # again to the same model is free.
    _fitted: object = field(default=None, compare=False, repr=False)

    @property
    def index(self) -> TableIndex:
        if self._index is None:
            object.__setattr__(self, "_index", TableIndex.of(self.services.values()))
        assert self._index is not None
        return self._index

    def put(self, *states: ServiceState) -> Table:
        d = dict(self.services)
        for s in states:
            d[s.name] = s
        return Table(MappingProxyType(d), self.members, self.awaiting_fence)

    def only(self, names: Iterable[str]) -> Table:
        """Keep the given services (adding uninitialized ones), drop the rest."""
        if names is self._fitted and names is not None:
            return self
        return Table(MappingProxyType({n: self.get(n) for n in names}), self.members,
                     self.awaiting_fence, _fitted=names)

    def with_members(self, members: Iterable[str]) -> Table:
        return Table(self.services, tuple(members), self.awaiting_fence, self._index,
                     self._fitted)

    def with_awaiting_fence(self, nodes: Iterable[str]) -> Table:
        return Table(self.services, self.members, tuple(sorted(set(nodes))), self._index,
                     self._fitted)

    def edit(self) -> TableDraft:
        return TableDraft(self)

    def to_json(self) -> dict[str, Any]:
        return {"services": {name: s.to_json() for name, s in sorted(self.services.items())},
                "members": list(self.members), "awaiting_fence": list(self.awaiting_fence)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Table:
        """Also reads the older flat form ``{name: state}`` (no members)."""
        nested = data.get("services")
        services: Mapping[str, Any] = nested if isinstance(nested, Mapping) else data
        members = tuple(data.get("members", ())) if isinstance(nested, Mapping) else ()
        awaiting = tuple(sorted(data.get("awaiting_fence", ()))) \
            if isinstance(nested, Mapping) else ()
        return cls(MappingProxyType({k: ServiceState.from_json(v)
                                     for k, v in services.items()}), members, awaiting)


class TableDraft(_ServiceLookup):
    """A table being changed by one planner step.

    ``put`` changes it in place at O(1) and keeps the :class:`TableIndex`
    current (a node's occupant set is copied only when first changed), so a
    step that changes k services costs O(k) plus one copy of the name ->
    state map, not a new table per change. :meth:`freeze` hands the result
    over as an immutable :class:`Table`; the draft is spent then.
    """

    def __init__(self, table: Table) -> None:
        index = table.index
        src = table.services
        # A proxy's copy() copies the dict underneath at C speed; dict(proxy) goes
        # key by key.
        self.services: dict[str, ServiceState] = \
            src.copy() if isinstance(src, dict | MappingProxyType) else dict(src)
        self.members = table.members
        self.awaiting_fence: set[str] = set(table.awaiting_fence)
        self._fitted = table._fitted
        self._waiting = set(index.waiting)
        self._queued = set(index.queued)
        self._occupants: dict[str, frozenset[str] | set[str]] = dict(index.occupants)
        self._copied: set[str] = set()  # nodes whose occupant set is this draft's own
        self._spent = False

    @property
    def waiting(self) -> Set[str]:
        return self._waiting

    @property
    def queued(self) -> Set[str]:
        return self._queued

    def occupants(self, node: str) -> Set[str]:
        return self._occupants.get(node, frozenset())

    def _own(self, node: str) -> set[str]:
        if node not in self._copied:
            self._occupants[node] = set(self._occupants.get(node, ()))
            self._copied.add(node)
        owned = self._occupants[node]
        assert isinstance(owned, set)
        return owned

    def put(self, ss: ServiceState) -> None:
        if self._spent:
            raise RuntimeError("TableDraft changed after freeze()")
        old = self.services.get(ss.name)
        if old is None and self._fitted is not None:
            self._fitted = None  # a name the fitted set did not have
        self.services[ss.name] = ss
        _toggle(self._waiting, ss.name, ss.state in WAITING_STATES)
        _toggle(self._queued, ss.name, bool(ss.queued))
        before = old.occupies if old is not None else None
        if before != ss.occupies:
            if before is not None:
                self._own(before).discard(ss.name)
            if ss.occupies is not None:
                self._own(ss.occupies).add(ss.name)

    def freeze(self) -> Table:
        self._spent = True
        occupants = {n: v if isinstance(v, frozenset) else frozenset(v)
                     for n, v in self._occupants.items() if v}
        index = TableIndex(frozenset(self._waiting), frozenset(self._queued),
                           MappingProxyType(occupants))
        return Table(MappingProxyType(self.services), self.members,
                     tuple(sorted(self.awaiting_fence)), index, self._fitted)


def _toggle(names: set[str], name: str, member: bool) -> None:
    if member:
        names.add(name)
    else:
        names.discard(name)
