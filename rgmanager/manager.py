"""The resource group manager: drives the planner with ordered deliveries.

Every delivery (membership change or message) is turned into a planner
event and planned against the replicated table; this node then carries out
only the actions addressed to it, each service's operations one at a time,
and reports the outcome by broadcasting another event. What the decisions
*are* lives in ``planner``; this module only makes them happen.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import codes
from .cluster.base import Cluster, Delivery, Membership, MembershipChange, Message
from .executor import describe_rc, run_action
from .loader import Loaded
from .monitor import Monitor, StatusChecker
from .planner import (
    Action,
    Event,
    NodesChanged,
    PartsDone,
    Plan,
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
    claimed_table,
    from_payload,
    plan,
    to_payload,
)
from .state import State, Table, service_name
from .tree.delta import diff
from .tree.model import Forest, Node
from .tree.order import start_order, stop_order
from .treeops import Runner, TreeOps

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot"


class Manager:
    def __init__(self, loaded: Loaded, cluster: Cluster, *, runner: Runner = run_action,
                 extra_env: Mapping[str, str] | None = None, monitor: bool = True,
                 clock: Callable[[], float] = time.time, workers: int = 8) -> None:
        self.cluster = cluster
        self.node = cluster.local_node
        self.clock = clock
        self._set_config(loaded)
        enforce = loaded.config.rm.attrs.get("enforce_timeouts", "0") in ("1", "yes", "true",
                                                                            "on")
        self.ops = TreeOps(runner, enforce_timeouts=enforce, extra_env=extra_env)
        self.checker = StatusChecker(self.ops)
        self.table = Table()
        self.membership = Membership((), False)
        self.last_time = 0.0
        self.lock = threading.RLock()  # guards table/model/membership
        self.service_locks: dict[str, threading.Lock] = {}
        # Actions for one service run one after another in the order the
        # planner asked for them (a start, then the emergency stop that
        # followed it, never the other way round).
        self.op_queues: dict[str, deque[Start | Stop | RestartParts | StopParts | StartParts]] \
            = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rg-op")
        self.pending: dict[str, tuple[threading.Event, list[Reply]]] = {}
        self.synced = True  # False while waiting for a snapshot after joining
        self.buffer: list[Delivery] = []
        self.claim_timer: threading.Timer | None = None
        self.claim_after = 5.0  # seconds without a table sender before claiming
        self.running = False
        self.busy = 0  # operations in flight (for tests that wait for quiet)
        self.busy_cv = threading.Condition()
        self.history: list[str] = []  # notes, newest last (bounded)
        self.monitor = Monitor(loaded.config.rm.status_poll_interval, self._status_tick) \
            if monitor else None

    def _set_config(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.forest: Forest = loaded.forest
        self.model = PlanModel.build(loaded.config, loaded.forest)

    # -- life ----------------------------------------------------------------
    def start(self) -> None:
        self.running = True
        if self.monitor is not None:
            self.monitor.start()
        self.cluster.start(self._deliver)

    def shutdown(self, stop_services: bool = True) -> None:
        """Stop the services this node runs (in order), then leave the cluster."""
        self.running = False
        if self.monitor is not None:
            self.monitor.shutdown()
        if stop_services:
            with self.lock:
                mine = [s for s in self.table if s.owner == self.node and s.state in (
                    State.STARTED, State.STARTING, State.STOPPING) and not s.frozen]
                mine.sort(key=lambda s: -self._depend_depth(s.name))
            for ss in mine:  # dependants before what they depend on
                top = self.forest.service(ss.name)
                if top is not None:
                    with self._service_lock(ss.name):
                        log.info("%s: stopping for shutdown", ss.name)
                        self.ops.stop(top)
        self.cluster.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _depend_depth(self, name: str) -> int:
        """How many services ``name`` depends on, transitively (cycle-safe)."""
        depth, seen = 0, {name}
        spec = self.model.services.get(name)
        while spec is not None and spec.depend and spec.depend not in seen:
            seen.add(spec.depend)
            depth += 1
            spec = self.model.services.get(spec.depend)
        return depth

    def stop_all_local(self, reason: str) -> None:
        """Stop every configured service here without touching the table
        (startup clean slate, quorum loss)."""
        for top in self.forest.services:
            log.info("%s: stopping locally (%s)", top.name, reason)
            with self._service_lock(top.name):
                self.ops.stop(top)

    # -- deliveries ------------------------------------------------------------
    def _deliver(self, delivery: Delivery) -> None:
        try:
            with self.lock:
                self._deliver_locked(delivery)
        except Exception:  # one bad delivery must not kill the loop
            log.exception("failed to handle delivery %r", delivery)

    def _deliver_locked(self, delivery: Delivery) -> None:
        if isinstance(delivery, MembershipChange):
            self._membership_change(delivery)
            return
        payload = delivery.payload
        if payload.get("kind") == SNAPSHOT:
            self._snapshot(delivery)
            return
        if not self.synced:
            self.buffer.append(delivery)
            return
        event = from_payload(dict(payload))
        self.last_time = max(self.last_time, event.time)
        self._apply(event)

    def _membership_change(self, mc: MembershipChange) -> None:
        previous = self.membership
        self.membership = mc.membership
        me_joined = self.node in mc.joined
        old = [n for n in mc.membership.members if n not in mc.joined]
        if me_joined and old:
            self._wait_for_table("joined a running cluster", [mc])
            return
        if me_joined:
            self.synced = True  # first member: the (empty) table is the table
        if mc.joined and self.synced and old and \
                min(old, key=self.model.nodeid) == self.node:
            # The coordinator (lowest id of those who hold the table) sends it,
            # ordered right after the join, to the newcomers.
            self.cluster.broadcast({"kind": SNAPSHOT, "for": list(mc.joined),
                                    "table": self.table.to_json(), "time": self.last_time})
        if not self.synced:
            self.buffer.append(mc)
            if mc.membership.quorate:
                self._arm_claim()
            return
        if previous.quorate and not mc.membership.quorate:
            log.warning("Quorum Dissolved: stopping local services; the table is stale "
                        "until a quorate member sends it again")
            # The planner decides the emergency stops (the same ones a dry run
            # shows); then this node starts nothing until it holds a quorate
            # side's table again.
            self._apply(NodesChanged(self.last_time, mc.joined, mc.left))
            self._wait_for_table("quorum lost", [])
            return
        self._apply(NodesChanged(self.last_time, mc.joined, mc.left))

    def _wait_for_table(self, why: str, buffered: list[Delivery]) -> None:
        log.info("%s; waiting for the service table", why)
        self.synced = False
        self.buffer = list(buffered)
        self._arm_claim()

    def _arm_claim(self) -> None:
        """If nobody holding the table remains (every member lost quorum), the
        lowest waiting node offers its own once the group is quorate again;
        ordering makes everyone agree on it."""
        if self.claim_timer is not None:
            self.claim_timer.cancel()
        self.claim_timer = threading.Timer(self.claim_after, self._claim)
        self.claim_timer.daemon = True
        self.claim_timer.start()

    def _claim(self) -> None:
        with self.lock:
            if self.synced or not self.running:
                return
            if not self.membership.quorate:
                # An inquorate node's table is never authoritative: a claim
                # now would let it restart what it has just stopped.
                log.info("no quorum: not offering this node's service table")
                return
            members = self.membership.members
            if not members or min(members, key=self.model.nodeid) != self.node:
                return
            self.cluster.broadcast({"kind": SNAPSHOT, "for": list(members), "claim": True,
                                    "table": self.table.to_json(), "time": self.last_time})

    def _snapshot(self, msg: Message) -> None:
        if self.synced or self.node not in msg.payload.get("for", ()):
            return
        self.table = Table.from_json(msg.payload["table"])
        self.last_time = max(self.last_time, float(msg.payload.get("time", 0.0)))
        if msg.payload.get("claim"):
            self.table = claimed_table(self.table, self.membership.members, self.last_time)
        self.synced = True
        if self.claim_timer is not None:
            self.claim_timer.cancel()
        buffered, self.buffer = self.buffer, []
        log.info("received the service table from %s (%d services)", msg.sender,
                 len(self.table.services))
        for d in buffered:
            if isinstance(d, MembershipChange):
                self.membership = d.membership
                self._apply(NodesChanged(self.last_time, d.joined, d.left))
            else:
                self._deliver_locked(d)
        if not buffered:
            self._apply(NodesChanged(self.last_time))

    def _apply(self, event: Event) -> None:
        result: Plan = plan(self.model, self.table, self.membership, event)
        self.table = result.table
        for note in result.notes:
            log.info("%s", note)
            self.history.append(note)
        del self.history[:-500]
        for action in result.actions:
            self._carry_out(action)
        self._update_watches()

    def _update_watches(self) -> None:
        if self.monitor is None:
            return
        for ss in self.table:
            mine = ss.owner == self.node and ss.state == State.STARTED and not ss.frozen
            if mine:
                self.monitor.watch(ss.name)
            else:
                self.monitor.unwatch(ss.name)

    # -- actions -----------------------------------------------------------------
    def _carry_out(self, action: Action) -> None:
        if isinstance(action, Reply):
            if action.origin == self.node and action.request in self.pending:
                ev, box = self.pending[action.request]
                box.append(action)
                ev.set()
            return
        if action.node != self.node:
            return
        queue = self.op_queues.setdefault(action.service, deque())
        queue.append(action)
        if len(queue) == 1:
            self._submit(self._drain, action.service)

    def _drain(self, service: str) -> None:
        """Carry out ``service``'s queued actions in order, one at a time."""
        while True:
            with self.lock:
                queue = self.op_queues.get(service)
                if not queue:
                    self.op_queues.pop(service, None)
                    return
                action = queue[0]
            try:
                self._run_action(action)
            finally:
                with self.lock:
                    queue.popleft()

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the worker pool, counted as in flight for wait_quiet."""
        with self.busy_cv:
            self.busy += 1

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("background operation %s failed", getattr(fn, "__name__", fn))
            finally:
                with self.busy_cv:
                    self.busy -= 1
                    self.busy_cv.notify_all()

        self.pool.submit(run)

    def _service_lock(self, name: str) -> threading.Lock:
        with self.lock:
            return self.service_locks.setdefault(name, threading.Lock())

    def _run_action(self, action: Start | Stop | RestartParts | StopParts | StartParts) -> None:
        try:
            with self._service_lock(action.service):
                event = self._execute(action)
            if isinstance(action, Stop) and action.emergency:
                if isinstance(event, StopDone) and not event.ok:
                    log.critical("%s: emergency stop without quorum FAILED; it may still run "
                                 "here: stop it by hand or power this node off",
                                 action.service)
                return  # the table already says stopped; nobody waits for it
            if event is not None and self.running:
                self.cluster.broadcast(to_payload(event))
        except Exception:
            log.exception("action %r failed", action)

    def _execute(self, action: Start | Stop | RestartParts | StopParts | StartParts
                 ) -> Event | None:
        top = self.forest.service(action.service)
        now = self.clock()
        if top is None:
            log.error("%s: not in the configuration; cannot %s", action.service, action)
            return None
        if isinstance(action, Start):
            res = self.ops.start(top, skip=())
            if res.ok:
                self.checker.reset(top.name)
            else:
                failed = res.failed[0]
                rc = res.records[-1].result.rc if res.records[-1].result else 1
                log.warning("%s: start of %s failed, rc=%d (%s)", top.name, failed.name, rc,
                            describe_rc(rc))
            return StartDone(now, top.name, self.node, res.ok)
        if isinstance(action, Stop):
            res = self.ops.stop(top)
            self.checker.forget(top.name)
            if not res.ok:
                log.warning("%s: stop failed at %s", top.name,
                            ", ".join(n.name for n in res.failed))
            return StopDone(now, top.name, self.node, res.ok)
        parts = [self._part(top, p) for p in action.parts]
        nodes = [p for p in parts if p is not None]
        ok = len(nodes) == len(parts)
        if isinstance(action, RestartParts):
            log.info("Some independent resources in %s failed; Attempting inline recovery",
                     top.name)
            for n in nodes:
                ok = self.ops.stop(n).ok and ok
                ok = self.ops.start(n).ok and ok
            self.checker.reset(top.name)
            return PartsDone(now, top.name, self.node, "restart", tuple(action.parts), ok)
        if isinstance(action, StopParts):
            for n in nodes:
                ok = self.ops.stop(n).ok and ok
            return PartsDone(now, top.name, self.node, "stop", tuple(action.parts), ok)
        if isinstance(action, StartParts):
            for n in nodes:
                ok = self.ops.start(n).ok and ok
            self.checker.reset(top.name)
            return PartsDone(now, top.name, self.node, "start", tuple(action.parts), ok)
        return None

    @staticmethod
    def _part(top: Node, path: str) -> Node | None:
        return next((n for n in top.walk() if n.path == path), None)

    # -- status checks -------------------------------------------------------------
    def _status_tick(self, service: str, force: bool = False) -> None:
        """One scheduled check; skipped while another operation holds the service."""
        with self.lock:
            ss = self.table.get(service)
            if ss.owner != self.node or ss.state != State.STARTED or ss.frozen or \
                    not self.running:
                return
            skip = set(ss.disabled_parts)
            top = self.forest.service(service)
        if top is None:
            return
        lock = self._service_lock(service)
        if not lock.acquire(blocking=False):
            return
        try:
            failure = self.checker.check(top, skip, force)
        finally:
            lock.release()
        if failure is None:
            return
        with self.lock:  # still ours and still started?
            ss = self.table.get(service)
            if ss.owner != self.node or ss.state != State.STARTED or ss.frozen:
                return
        detail = f"{failure.action} depth {failure.depth}: {describe_rc(failure.rc)}"
        self.cluster.broadcast(to_payload(StatusFailed(
            self.clock(), service, self.node, failure.node.path, failure.rc, detail)))

    def check_now(self, service: str) -> None:
        """Run a full status pass immediately, whatever the intervals say."""
        self._status_tick(service, force=True)

    # -- requests ------------------------------------------------------------------
    def request(self, op: str, service: str, node: str | None = None,
                follow_domain: bool = False, timeout: float = 300.0) -> Reply:
        service = service_name(service)
        if not self.membership.quorate:
            # Known locally, and an inquorate node's group may not be synced
            # to answer: rgmanager replies at once.
            return Reply("", self.node, codes.EQUORUM, codes.strerror(codes.EQUORUM))
        rid = f"{self.node}-{uuid.uuid4().hex[:12]}"
        ev = threading.Event()
        box: list[Reply] = []
        self.pending[rid] = (ev, box)
        try:
            now = self.clock()
            # The deadline travels with the request: once it has passed (the
            # caller gave up), a request still queued is answered, not done.
            self.cluster.broadcast(to_payload(Request(
                now, op, service, self.node, rid, node, follow_domain, now + timeout)))
            if not ev.wait(timeout):
                return Reply(rid, self.node, codes.EAGAIN, "Timed out waiting for the cluster")
            return box[0]
        finally:
            self.pending.pop(rid, None)

    # -- views -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self.lock:
            members = set(self.membership.members)
            cfg = self.loaded.config
            nodes = [{"name": n.name, "nodeid": n.nodeid, "online": n.name in members,
                      "local": n.name == self.node, "rgmanager": n.name in members,
                      "estranged": False} for n in cfg.nodes]
            for extra in sorted(members - {n.name for n in cfg.nodes}):
                nodes.append({"name": extra, "nodeid": 0, "online": True,
                              "local": extra == self.node, "rgmanager": True,
                              "estranged": True})
            services = []
            for ss in self.table:
                spec = self.model.services.get(ss.name)
                parts = spec.parts if spec else {}
                services.append({
                    "name": ss.name, "state": ss.state.value, "state_code": ss.code,
                    "owner": ss.owner, "last_owner": ss.last_owner,
                    "restarts": len(ss.restarts), "last_transition": ss.last_transition,
                    "frozen": ss.frozen, "partial": ss.partial,
                    "disabled_parts": [parts[p].name if p in parts else p
                                       for p in ss.disabled_parts],
                })
            return {"code": 0, "cluster": {"name": cfg.name,
                                           "config_version": cfg.config_version, "id": 0},
                    "local": self.node, "quorate": self.membership.quorate,
                    "stale": not self.synced, "members": nodes, "services": services}

    def wait_quiet(self, timeout: float = 30.0) -> bool:
        """Wait until no operation of this node is in flight."""
        deadline = time.monotonic() + timeout
        with self.busy_cv:
            while self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.busy_cv.wait(left)
        return True

    # -- reconfiguration -----------------------------------------------------------
    def reload(self, new: Loaded) -> list[str]:
        """Apply a new configuration: only changed parts stop and start here."""
        with self.lock:
            old_forest = self.forest
            d = diff(old_forest, new.forest)
            mine = {s.name for s in self.table if s.owner == self.node and
                    s.state == State.STARTED}
        done: list[str] = [f"added {name}" for name in d.services_added]
        failed: list[tuple[str, str, int]] = []  # service, tree path, rc
        for name in d.services_removed:
            top = old_forest.service(name)
            if name in mine and top is not None:
                with self._service_lock(name):
                    self.ops.stop(top)
                done.append(f"stopped removed {name}")
        for sd in d.services_changed:
            if sd.name not in mine:
                continue
            old_top, new_top = old_forest.service(sd.name), new.forest.service(sd.name)
            if old_top is None or new_top is None:
                continue
            broken = None
            with self._service_lock(sd.name):
                for n in stop_order(old_top):
                    if n.name in sd.stop:
                        self.ops.run(n, "stop")
                for n in start_order(new_top):
                    if n.name in sd.start:
                        rec = self.ops.run(n, "start")
                        if rec.result is not None and not rec.result.ok:
                            broken = (sd.name, n.path, rec.result.rc)
                            break  # as a start does: later parts need this one
            if broken is not None:
                failed.append(broken)
                done.append(f"{sd.name}: start of {broken[1]} failed (rc={broken[2]})")
            else:
                done.append(f"{sd.name}: restarted {', '.join(sd.start) or 'nothing'}")
        with self.lock:
            self._set_config(new)
            self.table = self.table.only(self.model.services)
        for line in done:
            log.info("reconfiguration: %s", line)
        # A part that failed to start is a failure of the service, handled by
        # its recovery policy at once (not "started" until the next check).
        for name, path, rc in failed:
            self.cluster.broadcast(to_payload(StatusFailed(
                self.clock(), name, self.node, path, rc,
                f"start during reconfiguration failed: {describe_rc(rc)}")))
        # Let the planner place new services.
        self.cluster.broadcast(to_payload(NodesChanged(self.clock())))
        return done

