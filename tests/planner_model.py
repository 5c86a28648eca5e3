"""A model checker for the planner: random clusters, random event sequences.

One generator serves hypothesis (``tests/test_planner_invariants.py``, a few
hundred sequences in CI) and the seeded script ``benchmarks/model_check.py``
(thousands): both draw through the small ``Draw`` interface below.

The world is modelled the way ``rg_test simulate`` does it (every action
the planner asks of a member completes, successfully unless a fault was
injected), plus what the planner cannot see: where each service physically
runs. With fencing off a node that goes down has crashed and runs nothing;
with fencing on (most sequences) a lost node is taken to run what it ran
until it is fenced (a coordinator's power switch, drawn only in a quorate
partition; it reboots a member it fences) or an administrator acknowledges
that it is off, so a start elsewhere before that is caught as a double
start. After every planner step the rules of
``rgmanager.planner.invariants`` are checked, and the step is planned twice
to check determinism.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from rgmanager.cluster.base import Membership
from rgmanager.config.model import DomainNode, FailoverDomain
from rgmanager.planner import (
    FENCED_BY_ADMIN,
    Event,
    NodeFenced,
    NodesChanged,
    PartsDone,
    PartSpec,
    Plan,
    PlanModel,
    RepetitionGuard,
    Reply,
    Request,
    RestartParts,
    ServiceSpec,
    Start,
    StartDone,
    StartParts,
    StatusFailed,
    Stop,
    StopDone,
    StopParts,
    fenced_by_agent,
    plan,
)
from rgmanager.planner.invariants import (
    check_actions,
    check_fencing,
    check_frozen,
    check_quiet,
    check_table,
)
from rgmanager.state import Table

POLICIES = ("restart", "relocate", "disable", "restart-disable")
REQUESTS = ("enable", "disable", "relocate", "restart", "stop", "freeze", "unfreeze",
            "convalesce")


class Draw(Protocol):
    def integers(self, lo: int, hi: int) -> int: ...
    def choice(self, items: Sequence[Any]) -> Any: ...
    def chance(self, p: float) -> bool: ...


class RandomDraw:
    """``Draw`` over ``random.Random`` (the seeded script)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def integers(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self.r.randrange(len(items))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p


class HypothesisDraw:
    """``Draw`` over hypothesis' ``data`` (shrinkable)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def integers(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def choice(self, items: Sequence[Any]) -> Any:
        return self.data.draw(self.st.sampled_from(list(items)))

    def chance(self, p: float) -> bool:
        return self.integers(0, 99) < int(p * 100)


# -- configurations ---------------------------------------------------------------
def gen_model(d: Draw) -> tuple[PlanModel, int]:
    """A random cluster: 3-5 nodes, domains with every flag, exclusive and
    depend, every policy, restart limits, independent and non-critical parts,
    fencing on (four in five) or off. Returns the model and the expected
    votes (sometimes above the node count)."""
    fencing = d.chance(0.8)
    n = d.integers(3, 5)
    nodes = [f"node{i}" for i in range(1, n + 1)]
    domains = []
    for i in range(d.integers(0, 3)):
        members = [x for x in nodes if d.chance(0.5)] or [d.choice(nodes)]
        ordered = d.chance(0.5)
        domains.append(FailoverDomain(
            f"dom{i}", ordered=ordered, restricted=d.chance(0.5), nofailback=d.chance(0.3),
            nodes=tuple(DomainNode(m, d.integers(0, 3) if ordered else 0) for m in members)))
    services: dict[str, ServiceSpec] = {}
    for i in range(d.integers(2, 6)):
        name = f"service:s{i}"
        parts: dict[str, PartSpec] = {}
        if d.chance(0.4):
            top = f"{name}/script:a{i}"
            nc = d.chance(0.5)
            parts[top] = PartSpec(top, f"script:a{i}", independent=True, noncritical=nc,
                                  max_restarts=d.integers(0, 2),
                                  restart_expire_time=d.choice((0, 30)))
            child = f"{top}/script:b{i}"
            parts[child] = PartSpec(child, f"script:b{i}", parent=top)
        plain = f"{name}/script:c{i}"
        parts[plain] = PartSpec(plain, f"script:c{i}")
        earlier = list(services)
        services[name] = ServiceSpec(
            name=name,
            domain=d.choice(domains) if domains and d.chance(0.7) else None,
            autostart=d.chance(0.85),
            exclusive=d.chance(0.15),
            recovery=d.choice(POLICIES),
            max_restarts=d.integers(0, 3),
            restart_expire_time=d.choice((0, 0, 60, 300)),
            depend=d.choice(earlier) if earlier and d.chance(0.25) else None,
            parts=MappingProxyType(parts))
    model = PlanModel(MappingProxyType(services),
                      MappingProxyType({x: i for i, x in enumerate(nodes, 1)}), fencing)
    expected = n + (1 if d.chance(0.2) else 0)
    return model, expected


def gen_event(d: Draw, model: PlanModel) -> tuple[str, ...]:
    nodes = sorted(model.node_ids, key=model.nodeid)
    services = sorted(model.services)
    kind = d.choice(("node-down", "node-down", "node-up", "node-up", "fail", "fail",
                     "request", "request", "request", "start-fail", "stop-fail", "wait",
                     "fence", "fence", "ack"))
    if kind in ("node-down", "node-up", "fence", "ack"):
        return (kind, d.choice(nodes))
    if kind == "fail":
        svc = d.choice(services)
        paths = ["", *sorted(model.services[svc].parts)]
        return ("fail", svc, d.choice(paths))
    if kind in ("start-fail", "stop-fail"):
        return (kind, d.choice(services), d.choice(nodes))
    if kind == "wait":
        return ("wait", str(d.choice((10, 100, 1000))))
    out: tuple[str, ...] = ("request",)
    svc = d.choice(services)
    for _ in range(d.choice((1, 1, 1, 2, 3))):  # several at once: they queue
        op = d.choice(REQUESTS)
        target = d.choice(nodes) if op in ("enable", "relocate") and d.chance(0.5) else ""
        follow = "F" if op == "enable" and not target and d.chance(0.3) else ""
        out += (op, svc if d.chance(0.7) else d.choice(services), target, follow,
                d.choice(nodes))
    return out


# -- the world ------------------------------------------------------------------------
@dataclass
class World:
    model: PlanModel
    expected_votes: int
    table: Table = field(default_factory=Table)
    members: tuple[str, ...] = ()
    clock: float = 0.0
    running: dict[str, set[str]] = field(default_factory=dict)  # physically
    faults: set[tuple[str, str, str]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    steps: int = 0
    events: int = 0
    requests: int = 0
    trace: list[str] = field(default_factory=list)
    last_plan: Plan = field(default_factory=lambda: Plan(Table()))

    def membership(self) -> Membership:
        votes = len(self.members)
        expected = max(self.expected_votes, len(self.model.node_ids))
        return Membership(self.members, votes * 2 > expected)

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    def set_members(self, nodes: set[str]) -> None:
        self.members = tuple(sorted(nodes, key=self.model.nodeid))

    def switch_off(self, node: str) -> None:
        """``node`` is off now (fenced, or crashed with fencing off): it runs nothing."""
        for nodes in self.running.values():
            nodes.discard(node)

    # -- one planner step, checked
    def step(self, event: Event, where: str) -> list[Event]:
        m = self.membership()
        before = self.table
        p = plan(self.model, before, m, event)
        again = plan(self.model, before, m, event)
        self.steps += 1
        bad = []
        if (again.table.to_json(), again.actions, again.notes) != \
                (p.table.to_json(), p.actions, p.notes):
            bad.append("plan is not deterministic")
        bad += check_actions(self.model, m, p.actions, self.running)
        bad += check_fencing(self.model, before, p.table, p.actions)
        bad += check_table(self.model, p.table, m)
        exempt = {event.service} if isinstance(event, Request) and \
            event.op in ("unfreeze", "freeze") else set()
        bad += check_frozen(before, p.table, m, exempt)
        self.violations += [f"{where}: {b}" for b in bad]
        self.table = p.table
        self.last_plan = p
        done = []
        for a in p.actions:
            if isinstance(a, Reply) or a.node not in self.members:
                continue
            ev = self.complete(a)
            if ev is not None:
                done.append(ev)
        return done

    def complete(self, a: Start | Stop | StartParts | StopParts | RestartParts) -> Event | None:
        t = self.tick()
        where = self.running.setdefault(a.service, set())
        if isinstance(a, Start):
            ok = ("start", a.service, a.node) not in self.faults
            self.faults.discard(("start", a.service, a.node))
            where.add(a.node)  # a failed start may have left parts running
            return StartDone(t, a.service, a.node, ok)
        if isinstance(a, Stop):
            if a.emergency:
                where.discard(a.node)
                return None
            ok = ("stop", a.service, a.node) not in self.faults
            self.faults.discard(("stop", a.service, a.node))
            if ok:
                where.discard(a.node)
            return StopDone(t, a.service, a.node, ok)
        op = {RestartParts: "restart", StopParts: "stop", StartParts: "start"}[type(a)]
        return PartsDone(t, a.service, a.node, op, a.parts, True)

    def settle(self, first: Event, where: str, more: Sequence[Event] = ()) -> None:
        """Plan and complete until nothing is pending. No step limit: a
        livelock shows as a state (table and pending events) seen twice."""
        queue: deque[Event] = deque([first, *more])
        guard = RepetitionGuard(self.table)
        for ev in queue:
            guard.queued(ev)
        while queue:
            ev = queue.popleft()
            done = self.step(ev, where)
            queue.extend(done)
            if guard.repeated(ev, self.last_plan, done):
                self.violations.append(f"{where}: livelock: the same table and pending events "
                                       f"again after {guard.steps} planner steps")
                return
        self.violations += [f"{where}: {b}" for b in
                            check_quiet(self.model, self.table, self.membership())]

    # -- the outside world
    def boot(self) -> None:
        self.set_members(set(self.model.node_ids))
        self.settle(NodesChanged(self.tick(), joined=self.members), "boot")

    def apply(self, ev: tuple[str, ...]) -> None:
        self.events += 1
        where = f"event {self.events} {':'.join(x for x in ev if x)}"
        self.trace.append(":".join(x for x in ev if x))
        kind = ev[0]
        if kind == "node-down":
            if ev[1] not in self.members:
                return
            self.set_members(set(self.members) - {ev[1]})
            if not self.model.fencing:
                self.switch_off(ev[1])  # taken as fenced at once: it runs nothing any more
            self.settle(NodesChanged(self.tick(), left=(ev[1],)), where)
            if ev[1] not in self.table.awaiting_fence:
                self.switch_off(ev[1])  # it occupied nothing: it crashed, nobody waits
        elif kind == "fence":
            # The coordinator's power switch, only in a quorate partition. A
            # node nobody waits for is fenced only by a late agent (a cancel
            # that raced a success), so only one that is not a member.
            node = ev[1]
            if not self.membership().quorate or (
                    node not in self.table.awaiting_fence and node in self.members):
                return
            if node in self.members:  # fencing a member reboots it: it leaves first
                self.set_members(set(self.members) - {node})
                self.switch_off(node)
                self.settle(NodesChanged(self.tick(), left=(node,)), where)
            self.switch_off(node)
            self.settle(NodeFenced(self.tick(), node, fenced_by_agent("power", "switch")),
                        where)
        elif kind == "ack":
            # An administrator made sure the node is off: only one that is not a member.
            if ev[1] in self.members:
                return
            self.switch_off(ev[1])
            self.settle(NodeFenced(self.tick(), ev[1], FENCED_BY_ADMIN), where)
        elif kind == "node-up":
            if ev[1] in self.members:
                return
            self.set_members(set(self.members) | {ev[1]})
            self.settle(NodesChanged(self.tick(), joined=(ev[1],)), where)
        elif kind == "fail":
            ss = self.table.get(ev[1])
            if ss.owner is None or ss.owner not in self.members or not ss.running:
                return
            self.settle(StatusFailed(self.tick(), ev[1], ss.owner, ev[2], 1, "checker"), where)
        elif kind in ("start-fail", "stop-fail"):
            self.faults.add((kind.removesuffix("-fail"), ev[1], ev[2]))
        elif kind == "wait":
            self.clock += float(ev[1])
        else:
            reqs = []
            for i in range(1, len(ev), 5):  # one request, or several at once
                op, svc, target, follow, origin = ev[i:i + 5]
                if origin not in self.members:
                    continue
                self.requests += 1
                reqs.append(Request(self.tick(), op, svc, origin, f"r{self.requests}",
                                    target or None, bool(follow)))
            if reqs:
                self.settle(reqs[0], where, more=reqs[1:])

    def finish(self) -> None:
        """Eventually: once every awaited fence is done (a member awaiting
        fence is rebooted by it) and after one more membership event (which
        releases held services) every service that can run does. Faults not
        yet triggered are dropped first: eventually means once failures stop."""
        self.faults.clear()
        for node in self.table.awaiting_fence:
            if node in self.members:
                self.set_members(set(self.members) - {node})
                self.switch_off(node)
                self.settle(NodesChanged(self.tick(), left=(node,)), "final fence")
            self.switch_off(node)
            self.settle(NodeFenced(self.tick(), node, FENCED_BY_ADMIN), "final fence")
        if self.table.awaiting_fence:
            self.violations.append(f"final: still awaiting fence of "
                                   f"{', '.join(self.table.awaiting_fence)} after every fence")
        self.settle(NodesChanged(self.tick()), "final nudge")
        self.violations += [f"final: {b}" for b in check_quiet(
            self.model, self.table, self.membership(), include_held=True)]


def run_sequence(d: Draw, max_events: int = 25) -> World:
    model, expected = gen_model(d)
    w = World(model, expected)
    w.boot()
    for _ in range(d.integers(1, max_events)):
        w.apply(gen_event(d, model))
        if w.violations:
            return w
    w.finish()
    return w


def describe_model(model: PlanModel) -> str:
    lines = [f"nodes: {' '.join(sorted(model.node_ids, key=model.nodeid))}"
             f" (fencing {'on' if model.fencing else 'off'})"]
    for s in model.services.values():
        d = s.domain
        dom = f"{d.name}(ordered={d.ordered} restricted={d.restricted} " \
              f"nofailback={d.nofailback} " \
              f"{[(n.name, n.priority) for n in d.nodes]})" if d else "-"
        lines.append(f"{s.name}: domain={dom} autostart={s.autostart} "
                     f"exclusive={s.exclusive} recovery={s.recovery} "
                     f"max_restarts={s.max_restarts}/{s.restart_expire_time}s "
                     f"depend={s.depend} parts={[p.path for p in s.parts.values()]}")
    return "\n".join(lines)
