"""A dry run of the cluster: feed events to the planner and pretend every action works.

``rg_test simulate`` (modelled on Pacemaker's ``crm_simulate``) and the golden
scenario tests both run here. The planner is the same pure function the
daemon calls, so the only thing simulated is the outside world: membership
changes, status failures, user requests and the agents' answers. Each action
the planner asks for is "carried out" by feeding its completion
(StartDone/StopDone/PartsDone) straight back into the planner until nothing
is left to do; injected failures (``start-fail``/``stop-fail``) make the next
matching completion report an error instead.

Everything is deterministic (a simulated clock starting at 1000 s that
advances one second per event and per completion) so that the output can be
compared byte for byte, and nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .agents.rules import expand_time
from .cluster.base import Membership
from .config.model import ClusterConfig
from .config.structure import integer_error
from .planner import (
    Action,
    Event,
    NodesChanged,
    PartsDone,
    PlanModel,
    Reply,
    Request,
    RestartParts,
    Start,
    StartDone,
    StartParts,
    StatusFailed,
    Stop,
    StopDone,
    StopParts,
    describe,
    plan,
)
from .state import ServiceState, Table, service_name

#: The simulated clock of a fresh run (well after the initial placement at 0).
START_TIME = 1000.0
#: The longest ``wait:`` event (ten years, as the configuration's time limit).
MAX_WAIT = 10 * 365 * 86400
#: Planner calls allowed for one event before the run is declared a livelock.
MAX_STEPS = 1000

REQUEST_OPS = ("enable", "disable", "relocate", "restart", "stop", "freeze", "unfreeze",
               "convalesce")
NODE_KINDS = ("node-down", "node-up")
INJECT_KINDS = ("start-fail", "stop-fail")
KINDS = NODE_KINDS + ("fail", "wait") + REQUEST_OPS + INJECT_KINDS

EVENT_SYNTAX = (
    "node-down:N | node-up:N | fail:RES | wait:SECONDS | enable:S[:N|:-F] | disable:S | "
    "relocate:S[:N] | restart:S | stop:S | freeze:S | unfreeze:S | convalesce:S | "
    "start-fail:S:N | stop-fail:S:N  (requests take an optional @ORIGIN suffix)")


# -- events -------------------------------------------------------------------
@dataclass(frozen=True)
class SimEvent:
    """One thing that happens to the simulated cluster, as the user wrote it."""

    text: str  # as given, shown in the output
    kind: str  # one of KINDS
    service: str = ""  # service:NAME for requests and injections
    node: str | None = None  # node-down/up, enable/relocate target, injection node
    resource: str = ""  # fail: resource name, tree path or service
    seconds: float = 0.0  # wait
    follow_domain: bool = False  # enable -F
    origin: str | None = None  # request origin (default: first online node)


def _service(name: str, text: str) -> str:
    if not name:
        raise ValueError(f"bad event {text!r}: a service name is required")
    return service_name(name)


def parse_event(text: str) -> SimEvent:
    """Parse one ``--event`` argument; ValueError says what was expected."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"bad event {text!r}: expected one of {EVENT_SYNTAX}")
    if not rest:
        raise ValueError(f"bad event {text!r}: nothing after '{kind}:'")
    if kind in NODE_KINDS:
        if ":" in rest or "@" in rest:
            raise ValueError(f"bad event {text!r}: expected {kind}:NODE")
        return SimEvent(raw, kind, node=rest)
    if kind == "fail":
        return SimEvent(raw, kind, resource=rest)
    if kind == "wait":
        plain = rest.replace(".", "", 1)
        seconds = float(rest) if plain.isascii() and plain.isdigit() and len(plain) < 12 \
            else expand_time(rest)
        if not 0 < seconds <= MAX_WAIT:
            raise ValueError(f"bad event {text!r}: expected wait:SECONDS (e.g. 30, 5m; at "
                             "most ten years)")
        return SimEvent(raw, kind, seconds=float(seconds))
    origin = None
    if kind in REQUEST_OPS and "@" in rest:
        rest, _, origin = rest.rpartition("@")
        if not origin:
            raise ValueError(f"bad event {text!r}: empty origin after '@'")
    rest = rest.removeprefix("service:")
    parts = rest.split(":")
    service = _service(parts[0], text)
    args = parts[1:]
    if kind in INJECT_KINDS:
        if len(args) != 1 or not args[0]:
            raise ValueError(f"bad event {text!r}: expected {kind}:SERVICE:NODE")
        return SimEvent(raw, kind, service=service, node=args[0])
    if kind == "enable" and args == ["-F"]:
        return SimEvent(raw, kind, service=service, follow_domain=True, origin=origin)
    if kind in ("enable", "relocate") and len(args) <= 1:
        if args and not args[0]:
            raise ValueError(f"bad event {text!r}: empty node name")
        return SimEvent(raw, kind, service=service, node=args[0] if args else None,
                        origin=origin)
    if args:
        raise ValueError(f"bad event {text!r}: {kind} takes only a service "
                         f"({kind}:SERVICE)")
    return SimEvent(raw, kind, service=service, origin=origin)


def resolve_resource(model: PlanModel, name: str) -> tuple[str, str]:
    """``fail:RES`` -> (service, tree path); the path is "" for the whole service.

    RES is a service (``web``/``service:web``), a tree path
    (``service:web/ip:10.0.0.1``) or a resource name (``ip:10.0.0.1``) used in
    exactly one place.
    """
    svc = service_name(name)
    if svc in model.services:
        return svc, ""
    for sname, spec in model.services.items():
        if name in spec.parts:
            return sname, name
    hits = [(sname, p.path) for sname, spec in model.services.items()
            for p in spec.parts.values() if p.name == name]
    if not hits:
        raise ValueError(f"fail:{name}: no service or resource called {name!r}")
    if len(hits) > 1:
        raise ValueError(f"fail:{name}: {name} is used in several places; give a tree path: "
                         + ", ".join(p for _, p in sorted(hits)))
    return hits[0]


def check_events(model: PlanModel, events: Sequence[SimEvent]) -> None:
    """Reject events that cannot be routed before anything is simulated."""
    for ev in events:
        if ev.kind == "fail":
            resolve_resource(model, ev.resource)
        if ev.kind in NODE_KINDS + INJECT_KINDS and ev.node not in model.node_ids:
            raise ValueError(f"{ev.text}: {ev.node} is not a configured node")
        if ev.kind in INJECT_KINDS and ev.service not in model.services:
            raise ValueError(f"{ev.text}: no service {ev.service}")


# -- quorum -------------------------------------------------------------------
@dataclass(frozen=True)
class Quorum:
    """cman's arithmetic: quorate when the members' votes exceed half the
    expected votes (``two_node`` clusters are quorate with either node)."""

    votes: Mapping[str, int]
    expected: int = 0
    two_node: bool = False

    def quorate(self, members: Sequence[str]) -> bool:
        if self.two_node:
            return bool(members)
        expected = max(self.expected, sum(self.votes.values()))
        return sum(self.votes.get(m, 1) for m in members) * 2 > expected

    @classmethod
    def from_config(cls, config: ClusterConfig) -> Quorum:
        def num(key: str) -> int:
            value = config.cman.get(key, "0")
            return int(value) if integer_error(value, "nonNegativeInteger") is None else 0
        return cls(MappingProxyType({n.name: n.votes for n in config.nodes}),
                   num("expected_votes"), num("two_node") == 1)

    @classmethod
    def one_vote_each(cls, model: PlanModel) -> Quorum:
        return cls(MappingProxyType(dict.fromkeys(model.node_ids, 1)))


# -- results ------------------------------------------------------------------
@dataclass
class Step:
    """What one event led to, in order: ``lines`` holds (kind, text) with kind
    note/action/explain, grouped per planner call (its notes, its actions,
    then its candidate lines)."""

    event: str
    lines: list[tuple[str, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [text for k, text in self.lines if k == kind]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "notes": self.of("note"), "actions": self.of("action"),
                "explain": self.of("explain")}


@dataclass
class SimResult:
    steps: list[Step]
    table: Table
    membership: Membership
    clock: float
    start_table: Table
    start_membership: Membership
    livelock: bool = False


# -- the runner ---------------------------------------------------------------
class _Runner:
    """The simulated cluster: current table, membership, clock and pending faults."""

    def __init__(self, model: PlanModel, table: Table, membership: Membership,
                 quorum: Quorum, clock: float, explain: bool, max_steps: int) -> None:
        self.model = model
        self.table = table.only(model.services)
        self.membership = membership
        self.quorum = quorum
        self.clock = clock
        self.explain = explain
        self.max_steps = max_steps
        self.faults: set[tuple[str, str, str]] = set()  # (start|stop, service, node)
        self.requests = 0
        self.livelock = False

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    def origin(self, ev: SimEvent) -> str:
        if ev.origin:
            return ev.origin
        if self.membership.members:
            return self.membership.members[0]
        return min(self.model.node_ids, key=self.model.nodeid, default="")

    def members(self, nodes: set[str]) -> Membership:
        ordered = tuple(sorted(nodes, key=lambda n: (self.model.nodeid(n), n)))
        return Membership(ordered, self.quorum.quorate(ordered), self.membership.epoch + 1)

    def apply(self, ev: SimEvent) -> Step:
        step = Step(ev.text)
        sim = step.lines.append
        current = set(self.membership.members)
        event: Event | None = None
        if ev.kind == "wait":
            self.clock += ev.seconds
            sim(("note", f"sim: {ev.seconds:g}s pass"))
        elif ev.kind in INJECT_KINDS:
            op = ev.kind.removesuffix("-fail")
            self.faults.add((op, ev.service, ev.node or ""))
            sim(("note", f"sim: the next {op} of {ev.service} on {ev.node} will fail"))
        elif ev.kind == "node-down":
            node = ev.node or ""
            if node not in current:
                sim(("note", f"sim: {node} is not a member; nothing happens"))
            else:
                self.membership = self.members(current - {node})
                event = NodesChanged(self.tick(), left=(node,))
        elif ev.kind == "node-up":
            node = ev.node or ""
            if node in current:
                sim(("note", f"sim: {node} is already a member; nothing happens"))
            else:
                self.membership = self.members(current | {node})
                event = NodesChanged(self.tick(), joined=(node,))
        elif ev.kind == "fail":
            service, path = resolve_resource(self.model, ev.resource)
            ss = self.table.get(service)
            if not ss.running or ss.owner is None:
                sim(("note", f"sim: {service} is {ss.state} and runs nowhere; "
                             f"no status check can fail"))
            else:
                event = StatusFailed(self.tick(), service, ss.owner, path, 1,
                                     "simulated failure")
        else:
            self.requests += 1
            event = Request(self.tick(), ev.kind, ev.service, self.origin(ev),
                            f"sim-{self.requests}", ev.node, ev.follow_domain)
        if event is not None:
            self.settle(event, step)
        return step

    def settle(self, first: Event, step: Step) -> None:
        """Plan ``first``, then complete every action (FIFO) until quiet."""
        queue: deque[Event] = deque([first])
        calls = 0
        while queue:
            if calls >= self.max_steps:
                self.livelock = True
                step.lines.append(("note", f"sim: livelock: still busy after {calls} planner "
                                           f"steps; giving up on this event"))
                return
            calls += 1
            event = queue.popleft()
            p = plan(self.model, self.table, self.membership, event)
            self.table = p.table
            if calls == 1 and not p.notes and not p.actions:
                step.lines.append(("note", "sim: the planner decided nothing"))
            step.lines += [("note", n) for n in p.notes]
            step.lines += [("action", describe(a)) for a in p.actions]
            if self.explain:
                step.lines += [("explain", f"{svc}: {line}")
                               for svc, lines in p.explain.items() for line in lines]
            for action in p.actions:
                if not isinstance(action, Reply) and action.node not in self.membership.members:
                    # Only the addressed node carries an action out; a dead one never
                    # reports back, so neither does the simulation.
                    step.lines.append(("note", f"sim: {action.node} is not a member; nobody "
                                               f"carries out '{describe(action)}'"))
                    continue
                done = self.complete(action)
                if done is not None:
                    queue.append(done)

    def complete(self, action: Action) -> Event | None:
        """The completion the cluster would report for ``action``."""
        if isinstance(action, Reply):
            return None
        t = self.tick()
        if isinstance(action, Start | Stop):
            op = "start" if isinstance(action, Start) else "stop"
            fault = (op, action.service, action.node)
            ok = fault not in self.faults
            self.faults.discard(fault)
            if isinstance(action, Start):
                return StartDone(t, action.service, action.node, ok)
            return StopDone(t, action.service, action.node, ok)
        op = {RestartParts: "restart", StopParts: "stop", StartParts: "start"}[type(action)]
        return PartsDone(t, action.service, action.node, op, action.parts, True)


def initial(model: PlanModel, nodes: Sequence[str], now: float = 0.0,
            quorum: Quorum | None = None) -> tuple[Table, Membership]:
    """The steady state of a cluster whose ``nodes`` all just came up: every
    autostart service placed where the planner puts it and started."""
    quorum = quorum or Quorum.one_vote_each(model)
    r = _Runner(model, Table(), Membership((), False), quorum, now, False, MAX_STEPS)
    r.membership = r.members(set(nodes))
    first = NodesChanged(now, joined=r.membership.members)
    r.settle(first, Step("initial"))
    return r.table, r.membership


def simulate(model: PlanModel, table: Table, membership: Membership,
             events: Sequence[SimEvent | str], explain: bool = False, *,
             quorum: Quorum | None = None, clock: float = START_TIME,
             max_steps: int = MAX_STEPS) -> SimResult:
    """Apply ``events`` in order and return every step and the final state.

    Raises ValueError (before simulating anything) for unparsable events or
    ones naming unknown nodes/resources.
    """
    parsed = [parse_event(e) if isinstance(e, str) else e for e in events]
    check_events(model, parsed)
    if not table.members:  # a given table was in step with the given membership
        table = table.with_members(membership.members)
    r = _Runner(model, table, membership, quorum or Quorum.one_vote_each(model), clock,
                explain, max_steps)
    start_table = r.table
    steps = [r.apply(ev) for ev in parsed]
    return SimResult(steps, r.table, r.membership, r.clock, start_table, membership,
                     r.livelock)


# -- state files and rendering --------------------------------------------------
def state_to_json(table: Table, membership: Membership, clock: float | None = None
                  ) -> dict[str, Any]:
    """The ``--state``/``--save-state`` format (``clock`` lets runs be chained)."""
    data: dict[str, Any] = {"members": list(membership.members),
                            "quorate": membership.quorate, "table": table.to_json()}
    if clock is not None:
        data["clock"] = clock
    return data


def state_from_json(data: Mapping[str, Any]) -> tuple[Table, Membership, float | None]:
    try:
        members = tuple(str(m) for m in data["members"])
        quorate = bool(data["quorate"])
        table = Table.from_json(data.get("table", {}))
        clock = float(data["clock"]) if data.get("clock") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError('state file: expected {"members": [...], "quorate": bool, '
                         f'"table": {{...}}}} ({type(err).__name__}: {err})') from None
    return table, Membership(members, quorate), clock


def members_line(m: Membership) -> str:
    names = " ".join(m.members) if m.members else "(none)"
    return f"Members: {names} ({'quorate' if m.quorate else 'no quorum'})"


def table_lines(table: Table) -> list[str]:
    """One aligned line per service: name, state, owner, then flags / last owner."""
    rows = []
    for ss in table:
        extra = [f for f in ("frozen", "partial") if getattr(ss, f)]
        if ss.owner is None and ss.last_owner:
            extra.append(f"last owner {ss.last_owner}")
        rows.append((ss.name, str(ss.state), ss.owner or "-", ", ".join(extra)))
    if not rows:
        return ["  (no services)"]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    return [f"  {a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]


def render_text(result: SimResult) -> str:
    out = ["=== Starting table ===", *table_lines(result.start_table),
           "  " + members_line(result.start_membership)]
    for step in result.steps:
        out.append(f"=== Event: {step.event} ===")
        prefix = {"note": "  * ", "action": "  -> ", "explain": "  "}
        out += [prefix[k] + text for k, text in step.lines]
    out += ["=== Resulting table ===", *table_lines(result.table),
            "  " + members_line(result.membership)]
    return "\n".join(out) + "\n"


def _service_json(ss: ServiceState) -> dict[str, Any]:
    return {"state": str(ss.state), "owner": ss.owner, "last_owner": ss.last_owner,
            "frozen": ss.frozen, "partial": ss.partial}


def render_json(result: SimResult) -> dict[str, Any]:
    return {
        "steps": [s.to_json() for s in result.steps],
        "table": {ss.name: _service_json(ss) for ss in result.table},
        "members": list(result.membership.members),
        "quorate": result.membership.quorate,
        "livelock": result.livelock,
    }


__all__ = ["EVENT_SYNTAX", "MAX_STEPS", "START_TIME", "Quorum", "SimEvent", "SimResult", "Step",
           "check_events", "initial", "members_line", "parse_event", "render_json",
           "render_text", "resolve_resource", "simulate", "state_from_json", "state_to_json",
           "table_lines"]
