"""A dry run of the cluster: feed events to the planner and pretend every action works.

``rg_test simulate`` (modelled on Pacemaker's ``crm_simulate``) and the golden
scenario tests both run here. The planner is the same pure function the
daemon calls, so the only thing simulated is the outside world: membership
changes, status failures, user requests and the agents' answers. Each action
the planner asks for is "carried out" by feeding its completion
(StartDone/StopDone/PartsDone) straight back into the planner until nothing
is left to do; injected failures (``start-fail``/``stop-fail``) make the next
matching completion report an error instead.

A dry run plans with fencing on (``PlanModel.fencing``): a member lost while
it runs something is fenced before its services move. Unless told otherwise
(``auto_fence=False``, ``rg_test simulate --no-auto-fence``) the dry run
assumes the fence succeeds right after the loss, when the partition is
quorate (a partition without quorum fences nobody), and says so; the event
``fenced:NODE`` fences by hand, so the waiting state can be looked at.

There is no step limit: an event is settled by :func:`.core.settle`, whose
:class:`~.core.RepetitionGuard` reports a livelock when the table and the
pending events repeat, whatever the number of services.

Everything is deterministic (a simulated clock starting at 1000 s that
advances one second per event and per completion) so that the output can be
compared byte for byte, and nothing here does I/O. The events are written
in the language of :mod:`.dryrun_lang`; the text and JSON views of a result
live with the other command-line output (``rgmanager.cli.render``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..cluster.base import Membership
from ..cluster.quorum import effective_expected, quorate
from ..config.model import ClusterConfig
from ..state import Table
from .core import Plan, settle
from .dryrun_lang import INJECT_KINDS, DryRunEvent, check_events, parse_event, resolve_resource
from .events import (
    Action,
    Event,
    NodeFenced,
    NodesChanged,
    Op,
    PartsDone,
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
)
from .model import PlanModel

#: The simulated clock of a fresh run (well after the initial placement at 0).
START_TIME = 1000.0
#: ``NodeFenced.by`` of the dry run's own fencing (automatic or ``fenced:NODE``).
DRY_RUN_FENCER = "the dry run"


# -- quorum -------------------------------------------------------------------
@dataclass(frozen=True)
class Quorum:
    """The configured votes, for :func:`rgmanager.cluster.quorum.quorate`.

    ``expected`` is ``<cman expected_votes>`` (0: not set, the sum of the
    nodes' votes). A dry run assumes the whole configured cluster has been
    together once (its initial state, or the run a saved state came from),
    so votequorum expects at least every configured vote.
    """

    votes: Mapping[str, int]
    expected: int = 0
    two_node: bool = False

    def quorate(self, members: Sequence[str]) -> bool:
        total = sum(self.votes.values())
        expected = effective_expected(self.expected or total, seen=total)
        return quorate(sum(self.votes.get(m, 1) for m in members), expected, self.two_node)

    @classmethod
    def from_config(cls, config: ClusterConfig) -> Quorum:
        return cls(MappingProxyType({n.name: n.votes for n in config.nodes}),
                   config.expected_votes, config.two_node)

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

    def note(self, text: str) -> None:
        """A line of the dry run's own (prefixed ``sim:``), not the planner's."""
        self.lines.append(("note", f"sim: {text}"))

    def of(self, kind: str) -> list[str]:
        return [text for k, text in self.lines if k == kind]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "notes": self.of("note"), "actions": self.of("action"),
                "explain": self.of("explain")}


@dataclass
class DryRunResult:
    steps: list[Step]
    table: Table
    membership: Membership
    clock: float
    start_table: Table
    start_membership: Membership
    livelock: bool = False


# -- the simulated cluster ----------------------------------------------------
class DryRunCluster:
    """The simulated cluster: current table, membership, clock and pending faults."""

    def __init__(self, model: PlanModel, table: Table, membership: Membership,
                 quorum: Quorum, clock: float, explain: bool, auto_fence: bool = True) -> None:
        self.model = model
        self.table = table.only(model.services)
        self.membership = membership
        self.quorum = quorum
        self.clock = clock
        self.explain = explain
        self.auto_fence = auto_fence
        self.faults: set[tuple[str, str, str]] = set()  # (start|stop, service, member)
        self.requests = 0
        self.livelock = False

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    def origin(self, ev: DryRunEvent) -> str:
        if ev.origin:
            return ev.origin
        if self.membership.members:
            return self.membership.members[0]
        return min(self.model.node_ids, key=self.model.nodeid, default="")

    def members(self, names: set[str]) -> Membership:
        ordered = tuple(sorted(names, key=lambda n: (self.model.nodeid(n), n)))
        return Membership(ordered, self.quorum.quorate(ordered), self.membership.epoch + 1)

    def apply(self, ev: DryRunEvent) -> Step:
        step = Step(ev.text)
        current = set(self.membership.members)
        member = ev.node or ""
        event: Event | None = None
        if ev.kind == "wait":
            self.clock += ev.seconds
            step.note(f"{ev.seconds:g}s pass")
        elif ev.kind in INJECT_KINDS:
            op = ev.kind.removesuffix("-fail")
            self.faults.add((op, ev.service, member))
            step.note(f"the next {op} of {ev.service} on {member} will fail")
        elif ev.kind == "node-down":
            if member not in current:
                step.note(f"{member} is not a member; nothing happens")
            else:
                self.membership = self.members(current - {member})
                self.settle(NodesChanged(self.tick(), left=(member,)), step)
                self.fence_lost(step)
        elif ev.kind == "node-up":
            if member in current:
                step.note(f"{member} is already a member; nothing happens")
            else:
                self.membership = self.members(current | {member})
                self.settle(NodesChanged(self.tick(), joined=(member,)), step)
                self.fence_lost(step)
        elif ev.kind == "fenced":
            if member in current:
                step.note(f"fencing {member} reboots it: it leaves the cluster first")
                self.membership = self.members(current - {member})
                self.settle(NodesChanged(self.tick(), left=(member,)), step)
            event = NodeFenced(self.tick(), member, DRY_RUN_FENCER)
        elif ev.kind == "fail":
            service, path = resolve_resource(self.model, ev.resource)
            ss = self.table.get(service)
            if not ss.running or ss.owner is None:
                step.note(f"{service} is {ss.state} and runs nowhere; no status check can fail")
            else:
                event = StatusFailed(self.tick(), service, ss.owner, path, 1,
                                     "simulated failure")
        else:
            self.requests += 1
            event = Request(self.tick(), Op(ev.kind), ev.service, self.origin(ev),
                            f"sim-{self.requests}", ev.node, ev.follow_domain)
        if event is not None:
            self.settle(event, step)
        return step

    def fence_lost(self, step: Step) -> None:
        """Automatic fencing: in a quorate partition every lost node the table
        awaits is fenced, successfully (the coordinator's job in a cluster).
        A member that is awaited (it rejoined before it was fenced) would be
        fenced, that is rebooted; the dry run leaves that to ``fenced:NODE``."""
        if not (self.auto_fence and self.model.fencing and self.membership.quorate):
            return
        for node in self.table.awaiting_fence:
            if node in self.membership.members:
                step.note(f"the coordinator would fence (reboot) {node} now; the dry run "
                          f"leaves that to an event fenced:{node}")
                continue
            step.note(f"{node} fenced (dry run: fencing assumed to succeed)")
            self.settle(NodeFenced(self.tick(), node, DRY_RUN_FENCER), step)

    def settle(self, first: Event, step: Step) -> None:
        """Plan ``first``, then complete every action (FIFO) until quiet, or
        until the planner repeats itself (a livelock, noted in the step)."""
        planned = [0]

        def seen(event: Event, p: Plan) -> None:
            self.table = p.table
            planned[0] += 1
            if planned[0] == 1 and not p.notes and not p.actions:
                step.note("the planner decided nothing")
            step.lines += [("note", n) for n in p.notes]
            step.lines += [("action", describe(a)) for a in p.actions]
            if self.explain:
                step.lines += [("explain", f"{svc}: {line}")
                               for svc, lines in p.explain.items() for line in lines]

        def complete(action: Action) -> Event | None:
            if not isinstance(action, Reply) and action.node not in self.membership.members:
                # Only the addressed member carries an action out; a dead one never
                # reports back, so neither does the dry run.
                step.note(f"{action.node} is not a member; nobody carries out "
                          f"'{describe(action)}'")
                return None
            return self.complete(action)

        done = settle(self.model, self.table, self.membership, [first], complete, seen)
        self.table = done.table
        if done.livelock:
            self.livelock = True
            step.note(f"livelock: after {done.steps} planner steps the table and the pending "
                      "events are as they were before; giving up on this event")

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


def initial(model: PlanModel, members: Sequence[str], now: float = 0.0,
            quorum: Quorum | None = None) -> tuple[Table, Membership]:
    """The steady state of a cluster whose ``members`` all just came up: every
    autostart service placed where the planner puts it and started."""
    quorum = quorum or Quorum.one_vote_each(model)
    cluster = DryRunCluster(model, Table(), Membership((), False), quorum, now, False)
    cluster.membership = cluster.members(set(members))
    first = NodesChanged(now, joined=cluster.membership.members)
    cluster.settle(first, Step("initial"))
    return cluster.table, cluster.membership


def dry_run(model: PlanModel, table: Table, membership: Membership,
            events: Sequence[DryRunEvent | str], explain: bool = False, *,
            quorum: Quorum | None = None, clock: float = START_TIME,
            auto_fence: bool = True) -> DryRunResult:
    """Apply ``events`` in order and return every step and the final state.

    ``auto_fence``: a lost member the planner waits for is fenced right away
    (with quorum); off, only a ``fenced:NODE`` event fences.

    Raises ValueError (before simulating anything) for unparsable events or
    ones naming unknown nodes/resources.
    """
    parsed = [parse_event(e) if isinstance(e, str) else e for e in events]
    check_events(model, parsed)
    if not table.members:  # a given table was in step with the given membership
        table = table.with_members(membership.members)
    cluster = DryRunCluster(model, table, membership,
                            quorum or Quorum.one_vote_each(model), clock, explain, auto_fence)
    start_table = cluster.table
    steps = [cluster.apply(ev) for ev in parsed]
    return DryRunResult(steps, cluster.table, cluster.membership, cluster.clock, start_table,
                        membership, cluster.livelock)


# -- saved state ----------------------------------------------------------------
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
        is_quorate = bool(data["quorate"])
        table = Table.from_json(data.get("table", {}))
        clock = float(data["clock"]) if data.get("clock") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError('state file: expected {"members": [...], "quorate": bool, '
                         f'"table": {{...}}}} ({type(err).__name__}: {err})') from None
    return table, Membership(members, is_quorate), clock


__all__ = ["DRY_RUN_FENCER", "START_TIME", "DryRunCluster", "DryRunResult", "Quorum", "Step",
           "dry_run", "initial", "state_from_json", "state_to_json"]
