"""plan(model, table, membership, event) -> actions + next table. No I/O.

Every node runs this on the same ordered events and gets the same answer;
each node then carries out only the actions addressed to it. The daemon and
the dry run (``rg_test simulate``) call the same function, so a dry run tells
the truth. Each decision adds one human sentence to ``Plan.notes`` (logged
at INFO).

Cost: a step edits a :class:`~rgmanager.state.TableDraft`, whose index says
which services wait to be placed, which have queued requests and who occupies
each node, so a step costs what it changes and decides (a candidate check is
O(1), placing N services on M nodes O(N x M)) plus one copy of the name ->
state map; only a membership change looks at every service. A caller that
feeds completions back (:func:`settle`) has no step limit: a loop that
cannot end is caught by :class:`RepetitionGuard` when a state repeats.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .. import codes
from ..cluster.base import Membership
from ..state import AfterStop, ServiceState, State, Table
from .events import (
    FENCED_BY_ADMIN,
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
    from_payload,
    to_payload,
)
from .fencing import awaiting_reason, fence_wait_node
from .model import PlanModel, ServiceSpec
from .placement import GOOD, ILLEGAL, Candidate, Placement, best

log = logging.getLogger(__name__)

TRANSITIONAL = (State.STARTING, State.STOPPING)
MAX_HISTORY = 100  # restart times kept when no max_restarts bounds them
MAX_QUEUED = 16  # requests waiting per service; more are refused with EAGAIN


@dataclass
class Plan:
    table: Table
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explain: dict[str, list[str]] = field(default_factory=dict)
    #: Services whose state this step changed (what a caller that follows the
    #: table step by step, such as :class:`RepetitionGuard`, needs to look at).
    changed: set[str] = field(default_factory=set)


def _window(times: tuple[float, ...], now: float, expire: int) -> tuple[float, ...]:
    if expire <= 0:
        return times
    return tuple(t for t in times if now - t < expire)


class _Planner:
    def __init__(self, model: PlanModel, table: Table, membership: Membership, now: float
                 ) -> None:
        self.model = model
        # Changed in place by this step; frozen into the plan's table at the end.
        self.table = table.only(model.services).edit()
        self.members = tuple(membership.members)
        self.quorate = membership.quorate
        self.now = now
        self.plan = Plan(table)
        self.online: list[str] = []
        self.place_on_online()
        self.stopped_now: set[str] = set()  # services this event brought to a stop
        # One handler per request op and per after-stop plan, each by name.
        self._handlers: dict[str, Callable[[Request, ServiceState], None]] = {
            Op.ENABLE: self.req_enable, Op.DISABLE: self.req_disable,
            Op.RELOCATE: self.req_relocate, Op.RESTART: self.req_restart,
            Op.STOP: self.req_stop, Op.FREEZE: self.req_freeze,
            Op.UNFREEZE: self.req_freeze, Op.CONVALESCE: self.req_convalesce,
            Op.MIGRATE: self.req_migrate,
        }
        self._after_stop: dict[AfterStop, Callable[[ServiceState, str], None]] = {
            AfterStop.STOPPED: self.stopped_then_stopped,
            AfterStop.DISABLED: self.stopped_then_disabled,
            AfterStop.RESTART: self.stopped_then_restart,
            AfterStop.RELOCATE: self.stopped_then_relocate,
            AfterStop.RECOVER: self.stopped_then_recover,
        }

    # -- bookkeeping -------------------------------------------------------
    def place_on_online(self) -> None:
        """Where services may go: the members of a quorate partition, less
        those awaiting fence (a lost node that rejoined unfenced may still
        run what it ran; it takes nothing new until it is fenced)."""
        unfenced = self.table.awaiting_fence
        self.online = [m for m in self.members if m not in unfenced] if self.quorate else []
        self.place = Placement(self.model, self.table.occupants, self.online,
                               [m for m in self.members if m in unfenced])

    def put(self, ss: ServiceState) -> None:
        if ss.state == State.STOPPED and self.table.get(ss.name).state != State.STOPPED:
            self.stopped_now.add(ss.name)
        self.plan.changed.add(ss.name)
        self.table.put(ss)

    def note(self, text: str) -> None:
        self.plan.notes.append(text)

    def act(self, action: Action) -> None:
        # The last line of defence for the first safety rule: a node without
        # quorum starts nothing, whatever path asked for it.
        if not self.quorate and isinstance(action, Start | StartParts | RestartParts):
            self.note(f"{action.service}: not started on {action.node}: no quorum")
            return
        self.plan.actions.append(action)

    def reply(self, ss: ServiceState, code: int, owner: str | None = None,
              text: str | None = None) -> ServiceState:
        if ss.request and ss.request_origin:
            self.act(Reply(ss.request, ss.request_origin, code, text or codes.strerror(code),
                           owner))
        return replace(ss, request=None, request_origin=None)

    def spec(self, name: str) -> ServiceSpec:
        return self.model.services[name]

    def candidates(self, spec: ServiceSpec, exclude: tuple[str, ...] = ()) -> list[Candidate]:
        return self.place.candidates(spec, self.table.get(spec.name), exclude)

    def choose(self, spec: ServiceSpec, exclude: tuple[str, ...] = ()) -> Candidate | None:
        cands = self.candidates(spec, exclude)
        chosen = best(cands, self.model)
        self.plan.explain[spec.name] = [c.line(c is chosen) for c in cands]
        return chosen

    def start(self, ss: ServiceState, node: str, why: str, recover: bool = False
              ) -> ServiceState:
        if not self.quorate:
            ss = self.reply(ss.moved(State.STOPPED, self.now, after_stop=AfterStop.STOPPED,
                                     target=None, tried=(), relocating_from=None),
                            codes.EQUORUM)
            self.put(ss)
            self.note(f"{ss.name}: not started on {node} ({why}): no quorum; left stopped")
            return ss
        # A full start revives non-critical parts a failure had left stopped.
        ss = ss.moved(State.STARTING, self.now, owner=node, after_stop=AfterStop.STOPPED,
                      target=None, partial=False, disabled_parts=(), part_restarts=(),
                      held=False)
        self.put(ss)
        self.act(Start(ss.name, node, recover))
        self.note(f"{ss.name}: starting on {node} ({why})")
        return ss

    def stop(self, ss: ServiceState, after: AfterStop, why: str, target: str | None = None,
             tried: tuple[str, ...] | None = None) -> ServiceState:
        node = ss.owner or ""
        ss = ss.moved(State.STOPPING, self.now, after_stop=after, target=target,
                      tried=ss.tried if tried is None else tried,
                      relocating_from=node if after == AfterStop.RELOCATE else ss.relocating_from)
        self.put(ss)
        self.act(Stop(ss.name, node, why))
        return ss

    # -- events ------------------------------------------------------------
    def handle(self, event: Event) -> None:
        if not self.model.fencing and self.table.awaiting_fence:
            # Fencing was switched off (a reload): a lost node counts as fenced.
            for node in sorted(self.table.awaiting_fence):
                self.fenced(node, "fencing is off")
        if isinstance(event, NodesChanged):
            self.nodes_changed(event)
        elif isinstance(event, NodeFenced):
            self.node_fenced(event)
        elif isinstance(event, Request):
            self.request(event)
        elif isinstance(event, StartDone):
            self.start_done(event)
        elif isinstance(event, StopDone):
            self.stop_done(event)
        elif isinstance(event, StatusFailed):
            self.status_failed(event)
        elif isinstance(event, PartsDone):
            self.parts_done(event)
        self.dependency_stops()
        self.run_queued()
        # Whatever this event freed (a disable, a stop, a relocation away, a
        # service that is now started for its dependants) may let a waiting
        # service start: re-evaluate every one this event did not itself stop.
        waiting = (self.table.get(n) for n in sorted(self.table.waiting)
                   if n not in self.stopped_now)
        self.evaluate([s for s in waiting if not s.held], quiet=True)
        self.plan.table = self.table.freeze()

    def nodes_changed(self, ev: NodesChanged) -> None:
        # Who joined and left is judged against the table, not the event, so
        # that every node (whatever its own previous view) plans the same.
        before = self.table.members
        joined = tuple(n for n in self.members if n not in before)
        left = tuple(n for n in before if n not in self.members)
        self.table.members = self.members
        for node in left:
            self.note(f"node {node} left the cluster")
        if self.model.fencing:
            self.await_fence(left)
        for node in joined:
            if node in self.table.awaiting_fence:
                self.note(f"node {node} rejoined before it was fenced: it takes no service "
                          "and what it ran waits until it is fenced")
        if not self.quorate:
            self.note("no quorum: no service is placed or recovered")
            self.emergency_stops()
            return
        # A membership change reconsiders everything, also what was held back.
        for ss in list(self.table):
            if ss.held:
                self.put(replace(ss, held=False))
        self.recover_orphans(rejoined=joined)
        for ss in list(self.table):
            if ss.state == State.STARTED and not ss.frozen and joined and not ss.request:
                self.failback(ss, joined)
        self.evaluate(list(self.table))

    def await_fence(self, left: tuple[str, ...]) -> None:
        """Every node that left while occupying a service must be fenced
        before that service runs anywhere else: the node goes into the
        table's awaiting set, its services into ``recovering`` with the
        reason (frozen ones stay as they are). Judged against the table, with
        or without quorum, like ``left``; a node that occupies nothing needs
        no fence."""
        for node in left:
            names = sorted(self.table.occupants(node))
            if not names:
                continue
            self.table.awaiting_fence.add(node)
            self.note(f"node {node} must be fenced before its services run elsewhere "
                      f"({', '.join(names)})")
            for name in names:
                ss = self.table.get(name)
                if ss.frozen:
                    self.note(f"{name}: frozen; left as it is until unfrozen (and then "
                              f"recovered once {node} is fenced)")
                else:
                    self.fence_wait(ss, node)
        self.place_on_online()

    def fence_wait(self, ss: ServiceState, node: str) -> None:
        """``ss`` may still run on the lost ``node``: it waits for the fence.
        A failed service stays failed (an administrator disables it); the
        others become ``recovering`` and keep their plan (a relocation's
        target, a pending disable, the waiting request) for afterwards."""
        reason = awaiting_reason(node)
        if ss.state == State.FAILED:
            self.put(replace(ss, reason=reason))
            return
        self.put(ss.moved(State.RECOVERING, self.now, reason=reason))
        self.note(f"{ss.name}: recovering once {node} is fenced")

    def node_fenced(self, ev: NodeFenced) -> None:
        by = "an administrator (clusvcadm --fence-ack)" if ev.by == FENCED_BY_ADMIN \
            else ev.by
        if ev.node not in self.table.awaiting_fence:
            self.note(f"node {ev.node} fenced by {by}; nothing waited for it")
            return
        self.fenced(ev.node, f"fenced by {by}")

    def fenced(self, node: str, how: str) -> None:
        """``node`` is off: its services may be recovered (with quorum; else
        when quorum returns, by the next membership change)."""
        self.table.awaiting_fence.discard(node)
        self.place_on_online()
        self.note(f"node {node} {how}")
        for ss in list(self.table):
            if ss.state == State.FAILED and ss.reason == awaiting_reason(node):
                self.put(replace(ss, reason=None))
        if not self.quorate:
            self.note(f"no quorum: the services {node} ran are recovered when quorum returns")
            return
        self.recover_orphans()

    def emergency_stops(self) -> None:
        """Without quorum a node cannot prove it owns anything: every member of
        this partition stops what it runs, at once, as rgmanager's emergency
        stop did. The table marks them stopped (starting again is for a quorate
        cluster to decide), so no later event of this partition can restart
        them, and a node that rejoins is never taken for their owner."""
        for ss in list(self.table):
            if not ss.running or ss.owner not in self.members:
                continue
            node = ss.owner
            self.act(Stop(ss.name, node, "no quorum: emergency stop", emergency=True))
            self.put(self.reply(ss.moved(State.STOPPED, self.now, after_stop=AfterStop.STOPPED,
                                         target=None, tried=(), relocating_from=None),
                                codes.EQUORUM))
            self.note(f"{ss.name}: no quorum; emergency stop on {node} (placed again when "
                      "quorum returns)")

    def recover_orphans(self, rejoined: tuple[str, ...] = ()) -> None:
        """Take over every service whose owner is no longer a member, whenever
        the cluster is quorate (also owners lost while quorum was gone), and
        those of an owner that left and came back: it has restarted (or
        emergency-stopped on quorum loss), so it runs none of them."""
        unfenced = self.table.awaiting_fence
        for ss in list(self.table):
            if ss.state == State.RECOVERING and ss.owner is None:
                # Waited for its owner's fence (or for quorum after it).
                if ss.last_owner not in unfenced:
                    self.take_over(ss, ss.last_owner or "", f"taking over from fenced member "
                                   f"{ss.last_owner}")
                continue
            gone = ss.owner not in self.online or ss.owner in rejoined
            if not ss.running or not gone:
                continue
            if ss.frozen:
                if ss.owner not in unfenced:  # one that waits for a fence was named then
                    self.note(f"{ss.name}: owner {ss.owner} is down but the service is "
                              "frozen; left as it is until unfrozen")
                continue
            dead = ss.owner or ""
            if dead in unfenced:  # unfrozen while its owner still waits for the fence
                self.fence_wait(ss, dead)
                continue
            why = f"owner {dead} left and rejoined, so it runs nothing" if dead in rejoined \
                else f"taking over from down member {dead}"
            self.take_over(ss, dead, why)

    def take_over(self, ss: ServiceState, dead: str, why: str) -> None:
        """Recover ``ss``, which ran on ``dead`` and runs nowhere now."""
        if ss.after_stop == AfterStop.DISABLED and \
                ss.state in (State.STOPPING, State.RECOVERING):
            self.put(self.reply(ss.moved(State.DISABLED, self.now), codes.ESUCCESS))
            return
        target = ss.target if ss.after_stop == AfterStop.RELOCATE else None
        ss = ss.moved(State.STOPPED, self.now, after_stop=AfterStop.STOPPED, target=None,
                      tried=())
        self.put(ss)
        spec = self.spec(ss.name)
        if not self.depend_met(spec):
            self.note(f"{ss.name}: owner {dead} is down; waits for {spec.depend} before "
                      "it is taken over")
            return
        chosen = None
        if target and target in self.online:
            chosen = next((c for c in self.candidates(spec)
                           if c.node == target and c.eligible), None)
        chosen = chosen or self.choose(spec)
        if chosen is None:
            self.note(f"{ss.name}: owner {dead} is down and no node can take it over "
                      f"({self.why_nowhere(spec)}); marked stopped")
            return
        self.start(ss, chosen.node, why, recover=True)

    def why_nowhere(self, spec: ServiceSpec) -> str:
        d = spec.domain
        if d is not None and d.restricted and not any(m.name in self.online for m in d.nodes):
            return f"restricted domain {d.name} has no member online"
        return "no eligible node"

    def failback(self, ss: ServiceState, joined: tuple[str, ...]) -> None:
        if ss.owner not in self.online:
            return
        spec = self.spec(ss.name)
        own, _ = self.place.score(spec, ss.owner or "", ss)
        for node in sorted(joined, key=self.model.nodeid):
            new, why = self.place.score(spec, node, ss)
            if new > own:
                cand = next((c for c in self.candidates(spec, (ss.owner or "",))
                             if c.node == node), None)
                if cand is None or not cand.eligible:
                    continue
                self.note(f"{ss.name}: relocating to better node {node} ({why}; current owner "
                          f"{ss.owner} scores lower)")
                self.stop(ss, AfterStop.RELOCATE, f"failback to {node}", target=node,
                          tried=(ss.owner or "",))
                return

    def evaluate(self, states: list[ServiceState], quiet: bool = False) -> None:
        """Place services that are stopped (or new) where the cluster would.

        ``quiet``: the re-evaluation after every event says only what it
        starts (a service that keeps waiting was explained when it stopped)."""
        if not self.quorate:
            return
        for ss in states:
            ss = self.table.get(ss.name)
            spec = self.spec(ss.name)
            if ss.frozen or ss.request:
                continue
            if ss.state == State.UNINITIALIZED:
                if not spec.autostart:
                    self.put(ss.moved(State.DISABLED, self.now))
                    self.note(f"{ss.name}: autostart is off; disabled")
                    continue
                ss = ss.moved(State.STOPPED, self.now)
                self.put(ss)
            if ss.state != State.STOPPED:
                continue
            if not self.depend_met(spec):
                if not quiet:
                    self.note(f"{ss.name}: waits for {spec.depend} (dependency not started)")
                continue
            explained = spec.name in self.plan.explain
            chosen = self.choose(spec)
            if chosen is None:
                if quiet:
                    if not explained:
                        del self.plan.explain[spec.name]
                else:
                    self.note(f"{ss.name}: stays stopped ({self.why_nowhere(spec)})")
                continue
            self.start(ss, chosen.node, f"{chosen.reason}")

    def eligible_here(self, spec: ServiceSpec, node: str) -> bool:
        """May ``node`` run the service now (online, allowed by its domain, no
        exclusivity conflict)? For going back where a relocation started."""
        return any(c.node == node and c.eligible for c in self.candidates(spec))

    def depend_met(self, spec: ServiceSpec) -> bool:
        if not spec.depend or spec.depend not in self.model.services:
            return True
        return self.table.get(spec.depend).state == State.STARTED

    def dependency_stops(self) -> None:
        for name in self.model.with_depend:
            ss = self.table.get(name)
            spec = self.spec(name)
            if ss.state != State.STARTED or ss.frozen or not spec.depend or ss.request:
                continue
            if spec.depend in self.model.services and \
                    self.table.get(spec.depend).state not in (State.STARTED, State.STARTING):
                self.note(f"{ss.name}: stopping on {ss.owner}: dependency {spec.depend} "
                          "missing")
                self.stop(ss, AfterStop.STOPPED, f"dependency {spec.depend} missing")

    def start_done(self, ev: StartDone) -> None:
        ss = self.table.get(ev.service)
        if ss.state != State.STARTING or ss.owner != ev.node:
            return
        if ev.ok:
            clean = not ss.tried and not ss.restarts and not ss.request
            ss = ss.moved(State.STARTED, self.now, tried=(), relocating_from=None)
            ss = self.reply(ss, codes.ESUCCESS, ev.node)
            self.put(ss)
            self.note(f"{ss.name}: started on {ev.node}")
            if clean:  # a better node may have joined while it was starting
                self.failback(ss, tuple(n for n in self.online if n != ev.node))
            self.evaluate([self.table.get(n) for n in self.model.dependants.get(ss.name, ())])
            return
        self.note(f"{ss.name}: failed to start on {ev.node}; stopping it there before "
                  "recovery")
        self.stop(ss, AfterStop.RECOVER, "failed start", tried=ss.tried + (ev.node,))

    def stop_done(self, ev: StopDone) -> None:
        ss = self.table.get(ev.service)
        if ss.state != State.STOPPING or ss.owner != ev.node:
            return
        if not ev.ok:
            ss = ss.moved(State.FAILED, self.now)
            ss = self.reply(ss, codes.EABORT)
            self.put(ss)
            self.note(f"{ss.name}: failed to stop on {ev.node}; marked failed, intervention "
                      "required (clusvcadm -d)")
            return
        self._after_stop[ss.after_stop](ss, ev.node)

    def stopped_then_disabled(self, ss: ServiceState, node: str) -> None:
        self.put(self.reply(ss.moved(State.DISABLED, self.now), codes.ESUCCESS))
        self.note(f"{ss.name}: disabled")

    def stopped_then_stopped(self, ss: ServiceState, node: str) -> None:
        self.put(self.reply(ss.moved(State.STOPPED, self.now), codes.ESUCCESS))
        self.note(f"{ss.name}: stopped")
        if not ss.held:
            # Stopped for a missing dependency (not by `clusvcadm -s`): if the
            # dependency came back while this stop ran, nothing else would
            # place it again, so this event's re-evaluation considers it.
            self.stopped_now.discard(ss.name)

    def stopped_then_restart(self, ss: ServiceState, node: str) -> None:
        ss = ss.moved(State.RECOVERING, self.now)
        self.start(ss, node, "restart in place", recover=True)

    def stopped_then_relocate(self, ss: ServiceState, node: str) -> None:
        spec = self.spec(ss.name)
        target = ss.target
        ss = ss.moved(State.RECOVERING, self.now)
        cands = self.candidates(spec, ss.tried)
        chosen = next((c for c in cands if c.node == target and c.eligible), None) \
            if target else None
        chosen = chosen or self.choose(spec, ss.tried)
        if chosen is None:
            if self.eligible_here(spec, node):
                self.note(f"{ss.name}: no other node can run it; restarting on {node}")
                ss = self.start(ss, node, "relocation failed, restarting locally", True)
                self.put(self.reply(ss, codes.ERELO, node) if ss.request else ss)
            else:
                self.put(self.reply(ss.moved(State.STOPPED, self.now, held=True),
                                    codes.EFAIL))
                self.note(f"{ss.name}: no node can take it after the stop on {node}; "
                          "left stopped until the next membership change or request")
            return
        self.start(ss, chosen.node, f"relocated from {node}: {chosen.reason}", True)

    def stopped_then_recover(self, ss: ServiceState, node: str) -> None:
        """The stop after a failed start: try the next node not yet tried."""
        spec = self.spec(ss.name)
        ss = ss.moved(State.RECOVERING, self.now)
        chosen = self.choose(spec, ss.tried)
        origin = ss.relocating_from
        if chosen is None and origin is not None and self.eligible_here(spec, origin):
            # rgmanager's "#70: Failed to relocate S; restarting locally".
            self.note(f"{ss.name}: failed to relocate (no target could start it); "
                      f"restarting on the original owner {origin}")
            ss = self.reply(ss, codes.ERELO, origin)
            self.start(replace(ss, relocating_from=None), origin or "",
                       "relocation failed, back on the original owner", recover=True)
            return
        if chosen is None:
            ss = self.reply(ss.moved(State.STOPPED, self.now, tried=(),
                                     relocating_from=None, held=True), codes.EFAIL)
            self.put(ss)
            self.note(f"{ss.name}: no node left to try; left stopped until the next "
                      "membership change or request")
            return
        self.start(ss, chosen.node, f"recovery after failed start on {node}: "
                   f"{chosen.reason}", recover=True)

    def status_failed(self, ev: StatusFailed) -> None:
        ss = self.table.get(ev.service)
        if ss.state != State.STARTED or ss.owner != ev.node or ss.frozen or ss.request:
            return
        if not self.quorate:
            self.note(f"{ss.name}: status failure on {ev.node} ignored: no quorum")
            return
        spec = self.spec(ss.name)
        part_name = self.part_name(spec, ev.part)
        what = f"{ev.service}: " + (f"{part_name} " if part_name != ev.service else "") + \
            f"status rc={ev.rc}" + (
            f" ({ev.detail})" if ev.detail else "")
        top = self.outermost_independent(spec, ev.part)
        if top is not None:
            part = spec.parts[top]
            times = _window(ss.part_restart_times(top), self.now, part.restart_expire_time)
            limited = part.max_restarts > 0
            if part.noncritical and not (limited and len(times) < part.max_restarts):
                ss = ss.with_part_restarts(top, ())
                ss = replace(ss, partial=True, disabled_parts=tuple(
                    sorted(set(ss.disabled_parts) | {top})))
                self.put(ss)
                self.act(StopParts(ss.name, ev.node, (top,)))
                self.note(f"{what}; non-critical subtree {part.name}" + (
                    f", {len(times)}/{part.max_restarts} restarts used" if limited else "") +
                    " -> stopping it, service stays started (partial); "
                    f"'clusvcadm -c {ss.name}' restarts it")
                return
            if not limited or len(times) < part.max_restarts:
                times = times + (self.now,) if limited else ()
                self.put(ss.with_part_restarts(top, times))
                self.act(RestartParts(ss.name, ev.node, (top,)))
                count = f"{len(times)}/{part.max_restarts} in " \
                    f"{part.restart_expire_time or 'unlimited '}s" if limited else "no limit"
                self.note(f"{what}; independent subtree {part.name} ({count}) -> restarting "
                          f"only that subtree on {ev.node}")
                return
            ss = ss.with_part_restarts(top, ())
            self.put(ss)
            what += f"; independent subtree {part.name} used {part.max_restarts} restarts"
        self.service_failure(ss, spec, ev.node, what)

    def part_name(self, spec: ServiceSpec, path: str) -> str:
        part = spec.parts.get(path)
        return part.name if part else spec.name

    def outermost_independent(self, spec: ServiceSpec, path: str) -> str | None:
        found = None
        p = spec.parts.get(path)
        while p is not None:
            if p.independent:
                found = p.path
            p = spec.parts.get(p.parent) if p.parent else None
        return found

    def service_failure(self, ss: ServiceState, spec: ServiceSpec, node: str, what: str
                        ) -> None:
        policy = spec.recovery
        if policy == "disable":
            self.note(f"{what}; recovery=disable -> disabling")
            self.stop(ss, AfterStop.DISABLED, "recovery policy disable")
            return
        if policy == "relocate":
            self.note(f"{what}; recovery=relocate -> relocating away from {node}")
            self.stop(ss, AfterStop.RELOCATE, "recovery policy relocate", tried=(node,))
            return
        times = _window(ss.restarts, self.now, spec.restart_expire_time)
        window = f"{spec.restart_expire_time}s" if spec.restart_expire_time else \
            "no expiry window"
        if spec.max_restarts > 0 and len(times) >= spec.max_restarts:
            ss = replace(ss, restarts=())
            if "disable" in policy:
                self.note(f"{what}; recovery={policy}, {len(times)}/{spec.max_restarts} "
                          f"restarts ({window}) -> threshold exceeded, disabling")
                self.stop(ss, AfterStop.DISABLED, "restart threshold exceeded")
            else:
                self.note(f"{what}; recovery={policy}, {len(times)}/{spec.max_restarts} "
                          f"restarts ({window}) -> threshold exceeded, relocating")
                self.stop(ss, AfterStop.RELOCATE, "restart threshold exceeded", tried=(node,))
            return
        times = (times + (self.now,))[-MAX_HISTORY:]
        ss = replace(ss, restarts=times)
        limit = f"{len(times)}/{spec.max_restarts} ({window})" if spec.max_restarts \
            else f"{len(times)}, no limit"
        self.note(f"{what}; recovery={policy}, restart {limit} -> restarting on {node}")
        self.stop(ss, AfterStop.RESTART, "recovery policy restart")

    def parts_done(self, ev: PartsDone) -> None:
        ss = self.table.get(ev.service)
        if ss.owner != ev.node:
            return
        if ev.op == "restart":
            self.note(f"{ss.name}: inline recovery of {', '.join(ev.parts)} complete" + (
                "" if ev.ok else " (start failed; the next status check decides)"))
        elif ev.op == "stop":
            self.note(f"{ss.name}: non-critical {', '.join(ev.parts)} stopped" + (
                "" if ev.ok else " (stop reported errors)"))
        elif ev.op == "start":
            if ev.ok:
                ss = replace(ss, partial=False, disabled_parts=(), part_restarts=())
                self.put(self.reply(ss, codes.ESUCCESS, ss.owner))
                self.note(f"{ss.name}: convalesced; non-critical parts running again")
            else:
                self.put(self.reply(ss, codes.EFAIL))
                self.note(f"{ss.name}: failed to repair non-critical parts")

    # -- user requests -------------------------------------------------------
    @staticmethod
    def busy(ss: ServiceState) -> bool:
        return ss.state in TRANSITIONAL or ss.state == State.RECOVERING or bool(ss.request)

    def run_queued(self) -> None:
        """Carry out the oldest waiting request of every service that is no
        longer busy, in name order (deterministic), until each is busy again
        or has none left; without quorum they are all answered EQUORUM."""
        for name in sorted(self.table.queued):
            while True:
                ss = self.table.get(name)
                if not ss.queued or (self.quorate and self.busy(ss)):
                    break
                self.put(replace(ss, queued=ss.queued[1:]))
                ev = from_payload(json.loads(ss.queued[0]))
                assert isinstance(ev, Request)
                self.request(ev)

    def answer(self, ev: Request, code: int, owner: str | None = None,
               text: str | None = None) -> None:
        """Reply to a request now (it is not carried out, or done at once)."""
        self.act(Reply(ev.id, ev.origin, code, text or codes.strerror(code), owner))
        self.note(f"{ev.service}: {ev.op} requested on {ev.origin} -> "
                  f"{text or codes.strerror(code)}")

    def request(self, ev: Request) -> None:
        """The checks every request passes, then the op's own handler."""
        if ev.service not in self.model.services:
            return self.answer(ev, codes.ENOSERVICE)
        if not self.quorate:
            return self.answer(ev, codes.EQUORUM)
        if ev.deadline and self.now > ev.deadline:
            return self.answer(ev, codes.EAGAIN, text="Temporary failure; try again (the "
                               "requester gave up waiting; not carried out)")
        handler = self._handlers.get(ev.op)
        if handler is None:
            return self.answer(ev, codes.EINVAL)
        ss = self.table.get(ev.service)
        if (node := fence_wait_node(ss, self.table.awaiting_fence)) is not None:
            return self.answer(ev, codes.EAGAIN, text=f"Temporary failure; try again "
                               f"({ev.service} waits until {node} is fenced)")
        if self.busy(ss):
            if len(ss.queued) >= MAX_QUEUED:
                return self.answer(ev, codes.EAGAIN)
            self.put(replace(ss, queued=ss.queued + (json.dumps(to_payload(ev)),)))
            self.note(f"{ev.service}: {ev.op} requested on {ev.origin} -> queued behind the "
                      f"operation in progress ({len(ss.queued) + 1} waiting)")
            return None
        return handler(ev, ss)

    def refused(self, ev: Request, ss: ServiceState) -> int | None:
        """Why a service may not be moved now (frozen, or the named node is
        down), as a reply code; None if it may."""
        if ss.frozen:
            return codes.EFROZEN
        if ev.node is not None and ev.node not in self.online:
            return codes.ENODE
        return None

    def req_freeze(self, ev: Request, ss: ServiceState) -> None:
        if ss.state not in (State.STOPPED, State.STARTED, State.DISABLED, State.UNINITIALIZED):
            return self.answer(ev, codes.EAGAIN)
        frozen = ev.op == Op.FREEZE
        self.put(replace(ss, frozen=frozen))
        self.answer(ev, codes.ESUCCESS, ss.owner)
        if not frozen:
            self.recover_orphans()
        return None

    def req_migrate(self, ev: Request, ss: ServiceState) -> None:
        # No service here can migrate (rgmanager's vm does; we have none).
        return self.answer(ev, codes.EFROZEN if ss.frozen else codes.EINVAL)

    def req_enable(self, ev: Request, ss: ServiceState) -> None:
        if (code := self.refused(ev, ss)) is not None:
            return self.answer(ev, code)
        return self.start_requested(ev, ss)

    def req_restart(self, ev: Request, ss: ServiceState) -> None:
        if (code := self.refused(ev, ss)) is not None:
            return self.answer(ev, code)
        if ss.state in (State.STOPPED, State.UNINITIALIZED):
            return self.start_requested(ev, ss)
        if ss.state != State.STARTED:
            return self.answer(ev, codes.EINVAL)
        self.note(f"{ss.name}: restart requested on {ev.origin} -> restarting on {ss.owner}")
        self.stop(self.pending(ev, ss), AfterStop.RESTART, "restart requested")
        return None

    def req_relocate(self, ev: Request, ss: ServiceState) -> None:
        if (code := self.refused(ev, ss)) is not None:
            return self.answer(ev, code)
        if ss.state == State.STOPPED:
            return self.start_requested(ev, ss)
        if ss.state != State.STARTED:
            return self.answer(ev, codes.EINVAL)
        spec = self.spec(ev.service)
        owner = ss.owner or ""
        if ev.node == owner:
            return self.answer(ev, codes.ERUN, owner)
        cands = self.candidates(spec, (owner,))
        cand = next((c for c in cands if c.node == ev.node), None) if ev.node else None
        if cand is not None and cand.eligible:
            self.plan.explain[spec.name] = [c.line(c is cand) for c in cands]
            target = cand.node
        elif cand is not None and cand.score > ILLEGAL and cand.node != owner:
            # docs/rgmanager.md §5: an exclusivity conflict on the requested node is refused.
            self.plan.explain[spec.name] = [c.line(False) for c in cands]
            return self.answer(ev, codes.EDEPEND)
        else:
            # docs/rgmanager.md §5: the requested node first, then the best other node.
            chosen = self.choose(spec, (owner,))
            if chosen is None:
                code = codes.EEXCL if cand is not None and cand.score else codes.ERELO
                return self.answer(ev, code, owner)
            if cand is not None:
                self.note(f"{ss.name}: {cand.node} cannot run it ({cand.reason}); "
                          f"trying {chosen.node} instead")
            target = chosen.node
        self.note(f"{ss.name}: relocate requested on {ev.origin} -> moving from {owner} "
                  f"to {target}")
        self.stop(self.pending(ev, ss), AfterStop.RELOCATE, f"relocate to {target}",
                  target=target, tried=(owner,))
        return None

    def req_disable(self, ev: Request, ss: ServiceState) -> None:
        self.stop_requested(ev, ss, State.DISABLED, AfterStop.DISABLED)

    def req_stop(self, ev: Request, ss: ServiceState) -> None:
        """Stopped until a membership change or a request (``held``)."""
        self.stop_requested(ev, ss, State.STOPPED, AfterStop.STOPPED)

    def req_convalesce(self, ev: Request, ss: ServiceState) -> None:
        if (code := self.refused(ev, ss)) is not None:
            return self.answer(ev, code)
        if ss.state != State.STARTED:
            return self.answer(ev, codes.EINVAL)
        if not ss.partial:
            return self.answer(ev, codes.ESUCCESS, ss.owner)
        self.put(self.pending(ev, ss))
        self.act(StartParts(ss.name, ss.owner or "", ss.disabled_parts))
        self.note(f"{ss.name}: convalesce requested -> starting "
                  f"{', '.join(ss.disabled_parts)} on {ss.owner}")
        return None

    @staticmethod
    def pending(ev: Request, ss: ServiceState) -> ServiceState:
        """``ss`` waiting to answer ``ev`` when the operation completes."""
        return replace(ss, request=ev.id, request_origin=ev.origin)

    def start_requested(self, ev: Request, ss: ServiceState) -> None:
        """enable, or restart/relocate of a service that is not running."""
        spec = self.spec(ev.service)
        if ss.state == State.STARTED:
            return self.answer(ev, codes.ERUN, ss.owner)
        if ss.state == State.FAILED:
            return self.answer(ev, codes.EABORT, text=f"{ss.name} has failed; can not start "
                               "(disable it first)")
        if not self.depend_met(spec):
            return self.answer(ev, codes.EDEPEND)
        pending = self.pending(ev, ss)
        if ev.node is not None or not ev.follow_domain:
            node = ev.node or ev.origin
            cands = self.candidates(spec)
            self.plan.explain[spec.name] = [c.line(c.node == node and c.eligible)
                                            for c in cands]
            cand = next((c for c in cands if c.node == node), None)
            if cand is None or cand.score == ILLEGAL or (ev.node is None and
                                                         cand.score < GOOD):
                return self.answer(ev, codes.EFAIL, text=f"Failure ({node} may not run "
                                   f"{ss.name}: {cand.reason if cand else 'unknown node'})")
            if not cand.eligible:
                return self.answer(ev, codes.EEXCL)
            self.put(self.start(pending, node, f"{ev.op} requested on {ev.origin}"))
            return None
        chosen = self.choose(spec)
        if chosen is None:
            return self.answer(ev, codes.EDOMAIN)
        self.start(pending, chosen.node, f"{ev.op} requested, by domain rules: "
                   f"{chosen.reason}")
        return None

    def stop_requested(self, ev: Request, ss: ServiceState, final: State, after: AfterStop
                       ) -> None:
        """disable or stop: stop it where it runs (or failed), else just mark it."""
        if (code := self.refused(ev, ss)) is not None:
            return self.answer(ev, code)
        stop = ev.op == Op.STOP
        pending = self.pending(ev, ss)
        if stop:  # stays stopped until a membership change or a request
            pending = replace(pending, held=True)
            if ss.state == State.STOPPED:
                self.put(replace(ss, held=True))
        if ss.state == State.STARTED:
            self.note(f"{ss.name}: {ev.op} requested on {ev.origin} -> stopping on "
                      f"{ss.owner}")
            self.stop(pending, after, f"{ev.op} requested")
            return None
        if ss.state == State.FAILED and ss.last_owner in self.online:
            self.note(f"{ss.name}: {ev.op} of failed service -> stopping on "
                      f"{ss.last_owner}")
            self.stop(replace(pending, owner=ss.last_owner), after, f"{ev.op} of failed")
            return None
        if not stop or ss.state in (State.FAILED, State.UNINITIALIZED):
            self.put(ss.moved(final, self.now, held=stop))
        return self.answer(ev, codes.ESUCCESS)


_MASK = (1 << 64) - 1


def _service_key(ss: ServiceState) -> int:
    """A service's state with the clock taken out: transition and restart
    times become counts (the clock moves on every step; only how many
    restarts a window holds changes what the planner decides)."""
    bare = replace(ss, last_transition=0.0, restarts=(), part_restarts=())
    return hash((bare, len(ss.restarts), tuple((p, len(t)) for p, t in ss.part_restarts)))


def _event_key(event: Event) -> int:
    return hash(replace(event, time=0.0))


class RepetitionGuard:
    """Tells a settle loop (plan, carry out, feed the completions back) that
    it goes round in circles.

    There is no step limit: a legitimate plan for N services takes N + 1
    steps or more, whatever N is. A loop that cannot end revisits a state
    instead, so the guard remembers every state it saw: the table and the
    events still pending, both without times (the clock moves on every step).
    Each is kept as a sum of hashes updated by what a step changed, so a step
    costs O(services it changed + events it added), not O(table).
    """

    def __init__(self, table: Table) -> None:
        self._keys = {ss.name: _service_key(ss) for ss in table.services.values()}
        self._table = sum(self._keys.values()) & _MASK
        self._pending = 0
        self._count = 0
        self._seen: set[tuple[int, int, int, int]] = set()
        self.steps = 0

    def queued(self, event: Event) -> None:
        """``event`` waits to be planned."""
        self._pending = (self._pending + _event_key(event)) & _MASK
        self._count += 1

    def repeated(self, planned: Event, p: Plan, queued: Iterable[Event] = ()) -> bool:
        """``planned`` was planned into ``p`` and ``queued`` events followed;
        True when the loop is now where it already was (a livelock: logged as
        an ERROR here, the caller makes it visible in its result)."""
        self.steps += 1
        self._pending = (self._pending - _event_key(planned)) & _MASK
        self._count -= 1
        for event in queued:
            self.queued(event)
        for name in p.changed:
            key = _service_key(p.table.get(name))
            self._table = (self._table + key - self._keys.get(name, 0)) & _MASK
            self._keys[name] = key
        state = (self._table, self._pending, self._count, hash(p.table.awaiting_fence))
        if state in self._seen:
            log.error("planner livelock: after %d steps (the last one planned %s) the table "
                      "and the pending events are as they were before; the loop would never "
                      "end", self.steps, describe_event(planned))
            return True
        self._seen.add(state)
        return False


def describe_event(event: Event) -> str:
    """A short name for an event, for log lines."""
    what = getattr(event, "service", "") or getattr(event, "node", "") or ",".join(
        getattr(event, "left", ()) + getattr(event, "joined", ()))
    return f"{event.kind} {what}".strip()


@dataclass
class Settled:
    """What :func:`settle` ended with."""

    table: Table
    steps: int
    livelock: bool = False


def settle(model: PlanModel, table: Table, membership: Membership, events: Iterable[Event],
           complete: Callable[[Action], Event | None],
           seen: Callable[[Event, Plan], None] | None = None) -> Settled:
    """Plan ``events``, carry out every action through ``complete`` (which
    returns its completion, or None), and plan those in turn (FIFO) until
    nothing is pending or the loop repeats itself (``Settled.livelock``,
    logged as an ERROR). ``seen`` is shown every step's event and plan."""
    queue: deque[Event] = deque()
    guard = RepetitionGuard(table)
    for event in events:
        queue.append(event)
        guard.queued(event)
    while queue:
        event = queue.popleft()
        p = plan(model, table, membership, event)
        table = p.table
        if seen is not None:
            seen(event, p)
        done = [d for d in (complete(a) for a in p.actions) if d is not None]
        queue.extend(done)
        if guard.repeated(event, p, done):
            return Settled(table, guard.steps, livelock=True)
    return Settled(table, guard.steps)


def claimed_table(table: Table, members: tuple[str, ...], now: float) -> Table:
    """The table a quorate group adopts when none of its members held one
    (every member lost quorum or just booted): each of them emergency-stopped
    or never started what it ran, so nothing a member owned runs any more."""
    out = []
    for ss in table:
        if ss.running and ss.owner in members:
            out.append(ss.moved(State.STOPPED, now, after_stop=AfterStop.STOPPED, target=None,
                                tried=(), relocating_from=None, request=None,
                                request_origin=None))
    return table.put(*out)


def plan(model: PlanModel, table: Table, membership: Membership, event: Event) -> Plan:
    """The decisions for one delivered event (pure; deterministic)."""
    p = _Planner(model, table, membership, event.time)
    p.handle(event)
    return p.plan
