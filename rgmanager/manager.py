"""The resource group manager: drives the planner with ordered deliveries.

Every delivery (membership change or message) is turned into a planner
event and planned against the replicated table (kept in step by
``replica``); this node then carries out only the actions addressed to it,
each service's operations one at a time and different services' in
parallel on a bounded pool, and reports the outcome by broadcasting another
event. What the decisions *are* lives in ``planner``; this module only makes
them happen. The status view it answers with is built by ``status_view``.

Reconfiguration goes through the ordered channel. A node that has loaded
and validated config version N broadcasts ``{"kind": "config", "version":
N}``; every member switches models when that message is delivered, at the
same point of its stream, so no two planners ever handle one event under
different models. A version not higher than the one in force is refused
(and logged). Each node reads cluster.conf from its own disk, and the
message carries only the version: a node that is delivered version N
before it has loaded N itself does not plan under any other model — it
*holds* every later delivery (in order), asks the daemon to read its file,
and once it has N, switches at the held point and replays what it held.
Until then it decides and carries out nothing new (its peers see its
operations as still pending); if its file never reaches N it stays held,
saying so at ERROR each time it checks. We chose this over applying "the
newest model this node has", which would let two planners disagree, and
over stopping the node, which would stop services that are fine.

A joining node meets the same question: the table it is sent was planned
under the sender's version (the snapshot says which). An older newcomer
holds, as above, until it has loaded that version. A newer newcomer cannot
plan under the older one, so it proposes its own version and asks for a
table planned under it (``want_table``): the members switch at that message
(or hold until they have loaded it) and the coordinator then sends the
table from that point; until it arrives the newcomer plans nothing and
never claims a table of its own.

Losing the channel (``ClusterLost``, corosync gone) stops every service
this node owns at once — it can no longer prove it owns them — logged at
CRITICAL; the node then rejoins as a fresh member when the backend is back.

Fencing is on by default (``fencing=True``; the daemon keeps it on for
every backend): a member lost while it occupies a service is fenced before
its services run elsewhere. After every delivery the ``fencing_driver``
keeps a Fencer busy with exactly the table's awaiting nodes while this node
is the fencing coordinator; a success is broadcast as ``NodeFenced`` and
acts only when delivered. A node that is behind (holding deliveries for a
config version, stopping after a lost cluster) changes nothing in its
fencing until it has caught up; one without a current table fences nobody.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from . import codes
from .cluster.base import Cluster, ClusterLost, Delivery, Membership, MembershipChange, Message
from .executor import describe_rc, run_action
from .fence import Fencer
from .fencing_driver import FenceDriver, FencerFactory, ack_refusal
from .loader import Loaded
from .monitor import Monitor, StatusChecker
from .planner import (
    FENCED_BY_ADMIN,
    Action,
    Event,
    NodeFenced,
    NodesChanged,
    PartsDone,
    Plan,
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
    plan,
    to_payload,
)
from .replica import SNAPSHOT, TableReplica
from .state import RUNNING_STATES, State, Table, service_name
from .status_view import StatusView, status_view
from .tree.delta import diff
from .tree.model import Forest, Node
from .tree.order import start_order, stop_order
from .treeops import Runner, TreeOps

log = logging.getLogger(__name__)

#: Message kind of a reconfiguration ("switch to config version N here").
CONFIG = "config"
#: Payload key of an administrator's ``NodeFenced``: the id its requester waits on.
ACK = "ack"
#: Default bound on operations carried out at once (different services).
WORKERS = 16


class ReloadRefused(Exception):
    """The cluster refused this node's configuration (older than the one in force)."""


@dataclass
class _ReloadWork:
    """Progress of one switch to a config version on this node."""

    version: int
    lines: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)  # service, path, rc
    left: int = 0  # _Reconfigure operations not yet carried out
    refused: str = ""
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Reconfigure:
    """Stop/start the changed parts of one service here (queued with its actions)."""

    service: str
    old_top: Node | None  # None: an added service (nothing to do here)
    new_top: Node | None  # None: a removed service (stop it)
    work: _ReloadWork
    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()


Work = Start | Stop | RestartParts | StopParts | StartParts | _Reconfigure


class Manager:
    def __init__(self, loaded: Loaded, cluster: Cluster, *, runner: Runner = run_action,
                 extra_env: Mapping[str, str] | None = None, monitor: bool = True,
                 clock: Callable[[], float] = time.time, workers: int = WORKERS,
                 fencing: bool = True, fencer: FencerFactory = Fencer) -> None:
        self.cluster = cluster
        self.node = cluster.local_node
        self.clock = clock
        self.fencing = fencing
        self._set_config(loaded)
        self.ops = TreeOps(runner, enforce_timeouts=loaded.config.rm.enforce_timeouts,
                           extra_env=extra_env)
        self.checker = StatusChecker(self.ops)
        self.lock = threading.RLock()  # guards table/model/membership
        self.replica = TableReplica(self.node, cluster, self.lock,
                                    order_key=lambda n: self.model.nodeid(n),
                                    apply=self._apply, replay=self._deliver_locked,
                                    config_version=lambda: self.loaded.config.config_version)
        self.service_locks: dict[str, threading.Lock] = {}
        # Actions for one service run one after another in the order the
        # planner asked for them (a start, then the emergency stop that
        # followed it, never the other way round); different services run in
        # parallel, at most ``workers`` at once.
        self.op_queues: dict[str, deque[tuple[int, Work]]] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rg-op")
        self.pending: dict[str, tuple[threading.Event, list[Reply]]] = {}
        # Bumped when the channel is lost: starts queued before it are not run.
        self.generation = 0
        self.running = False
        self.killed = False
        self.busy = 0  # operations in flight (for tests that wait for quiet)
        self.busy_cv = threading.Condition()
        self.history: list[str] = []  # notes, newest last (bounded)
        # Reconfiguration through the channel (see the module docstring).
        self.on_config_needed: Callable[[int], None] | None = None
        self._configs: dict[int, Loaded] = {}  # loaded here, not yet switched to
        self._reloads: dict[int, _ReloadWork] = {}
        self._held_for: int | None = None  # delivered version we have not loaded
        self._held: list[Delivery] = []
        self._quiescing = False  # stopping after ClusterLost: deliveries held
        self._want_table: list[str] = []  # newcomers to send the table once switched
        # The version this newcomer proposed after an older table came: the
        # other holders' copies of that table are the same answer, not news.
        self._proposed: int | None = None
        self.monitor = Monitor(loaded.config.rm.status_poll_interval, self._status_tick,
                               next_due=self._status_due) \
            if monitor else None
        self.fence = FenceDriver(self.node, loaded.config, cluster.broadcast, factory=fencer,
                                 clock=clock)

    def _set_config(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.forest: Forest = loaded.forest
        self.model = loaded.plan_model(fencing=self.fencing)

    # -- the replicated table (see replica) -----------------------------------------
    @property
    def table(self) -> Table:
        return self.replica.table

    @table.setter
    def table(self, value: Table) -> None:
        self.replica.table = value

    @property
    def membership(self) -> Membership:
        return self.replica.membership

    @property
    def synced(self) -> bool:
        return self.replica.synced

    @property
    def last_time(self) -> float:
        return self.replica.last_time

    @property
    def claim_after(self) -> float:
        return self.replica.claim_after

    @claim_after.setter
    def claim_after(self, seconds: float) -> None:
        self.replica.claim_after = seconds

    @property
    def held_for(self) -> int | None:
        """The config version the cluster switched to and this node waits for
        (its deliveries are held meanwhile), or None."""
        return self._held_for

    @property
    def claim_timer(self) -> threading.Timer | None:
        return self.replica.claim_timer

    # -- life ----------------------------------------------------------------
    def start(self) -> None:
        self.running = True
        if self.monitor is not None:
            self.monitor.start()
        self.cluster.start(self._deliver)

    def shutdown(self, stop_services: bool = True) -> None:
        """Stop the services this node runs (dependants first, independent ones
        in parallel), then leave the cluster."""
        self.running = False
        if self.monitor is not None:
            self.monitor.shutdown()
        if stop_services:
            with self.lock:
                mine = [s.name for s in self.table if s.owner == self.node
                        and s.state in RUNNING_STATES and not s.frozen]
            self._stop_services(mine, "shutdown")
        self.fence.close()
        self.replica.stop()
        self.cluster.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        """Die as SIGKILL would make the daemon die (for tests): stop nothing,
        send nothing, leave no group; deliveries from now on are ignored.
        Returns once the operation in flight (if any) has ended, as the
        process's children would be gone. The rest of the machine (the
        cluster node, the resources) is the caller's to kill."""
        self.killed = True
        self.running = False
        if self.monitor is not None:
            self.monitor.shutdown()
        self.fence.close(timeout=0)  # the agents are the machine's; they die with it
        with self.lock:
            self.replica.stop()
            for queue in self.op_queues.values():
                while len(queue) > 1:  # the one in flight finishes; nothing after it
                    queue.pop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def depend_waves(self, names: Iterable[str]) -> list[list[str]]:
        """``names`` in stop order: waves of services that do not depend on each
        other, dependants before what they depend on (reverse for starts)."""
        by_depth: dict[int, list[str]] = {}
        for name in names:
            by_depth.setdefault(self._depend_depth(name), []).append(name)
        return [sorted(by_depth[d]) for d in sorted(by_depth, reverse=True)]

    def _depend_depth(self, name: str) -> int:
        """How many services ``name`` depends on, transitively (cycle-safe)."""
        depth, seen = 0, {name}
        spec = self.model.services.get(name)
        while spec is not None and spec.depend and spec.depend not in seen:
            seen.add(spec.depend)
            depth += 1
            spec = self.model.services.get(spec.depend)
        return depth

    def _stop_services(self, names: Iterable[str], reason: str,
                       forest: Forest | None = None) -> None:
        """Stop ``names`` here, wave by wave (see ``depend_waves``), each wave in
        parallel on the pool; returns when all are stopped. The table is not
        touched (shutdown, startup clean slate, channel lost)."""
        forest = forest or self.forest
        for wave in self.depend_waves(names):
            futures = []
            for name in wave:
                top = forest.service(name)
                if top is not None:
                    futures.append(self.pool.submit(self._stop_one, top, reason))
            wait(futures)

    def _stop_one(self, top: Node, reason: str) -> None:
        with self._service_lock(top.name):
            log.info("%s: stopping (%s)", top.name, reason)
            res = self.ops.stop(top)
            self.checker.forget(top.name)
        if not res.ok:
            log.error("%s: stop (%s) failed at %s", top.name, reason,
                      ", ".join(n.name for n in res.failed))

    def stop_all_local(self, reason: str) -> None:
        """Stop every configured service here without touching the table
        (startup clean slate, quorum loss)."""
        self._stop_services([top.name for top in self.forest.services], reason)

    # -- deliveries ------------------------------------------------------------
    def _deliver(self, delivery: Delivery) -> None:
        if self.killed:
            return
        try:
            with self.lock:
                self._deliver_locked(delivery)
                self._fence_sync()
        except Exception:  # one bad delivery must not kill the loop
            log.exception("failed to handle delivery %r", delivery)

    def _fence_sync(self) -> None:
        """The quiet point after a delivery: fence exactly the awaiting nodes if
        this node is the coordinator, nobody otherwise (under the lock; never
        blocks). See ``fencing_driver``."""
        if self.killed:
            return
        if self._held_for is not None or self._quiescing:
            return  # behind the stream: change nothing until caught up
        if not self.synced:
            self.fence.stop_all()  # no current table: fence nobody
            return
        self.fence.sync(self.table, self.membership, self.model)

    def _deliver_locked(self, delivery: Delivery) -> None:
        if isinstance(delivery, ClusterLost):
            self.fence.stop_all()
            self._cluster_lost(delivery)
            return
        if self._held_for is not None or self._quiescing:
            # Waiting for a config version (see the module docstring) or for
            # the stops after a lost cluster to finish.
            self._held.append(delivery)
            return
        if isinstance(delivery, MembershipChange):
            self.replica.membership_change(delivery)
            return
        if self._version_business(delivery) or self.replica.takes(delivery):
            return
        payload = delivery.payload
        if payload.get("kind") == CONFIG:
            self._config_message(delivery)
            return
        data = dict(payload)
        ack = data.pop(ACK, None)  # an administrator's fence ack: who waits for it
        event = from_payload(data)
        self.replica.last_time = max(self.replica.last_time, event.time)
        self._apply(event)
        if ack is not None and delivery.sender == self.node and ack in self.pending:
            ev, box = self.pending[ack]
            box.append(Reply(ack, self.node, codes.ESUCCESS, "Success"))
            ev.set()

    def _replay(self, held: list[Delivery]) -> None:
        """Deliver what was held, in order (under the lock)."""
        for d in held:
            try:
                self._deliver_locked(d)
            except Exception:  # as in _deliver: one bad delivery must not stop the rest
                log.exception("failed to handle held delivery %r", d)

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

    def _cluster_lost(self, lost: ClusterLost) -> None:
        """corosync went away: stop what we own at once, forget the table.

        Until those stops are done, later deliveries (the rejoin, the table)
        are held, so nothing is started again under a stop still running."""
        mine = [s.name for s in self.table if s.owner == self.node
                and s.state in RUNNING_STATES]
        log.critical("lost the cluster (%s): stopping %d service(s) here at once; this node "
                     "can no longer prove it owns them. It rejoins as a fresh member when "
                     "the cluster is back", lost.reason, len(mine))
        self.generation += 1  # starts queued before this are dropped
        self.replica.lost()
        self._held_for, self._held, self._want_table = None, [], []
        self._proposed = None
        self._update_watches()
        if mine:
            self._quiescing = True
            self._submit_thread(self._stop_after_loss, mine)

    def _stop_after_loss(self, names: list[str]) -> None:
        try:
            self._stop_services(names, "cluster lost")
        finally:
            with self.lock:
                self._quiescing = False
                held, self._held = self._held, []
                self._replay(held)
                self._fence_sync()

    def _counted(self, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        """``fn(*args)`` counted as in flight for wait_quiet (counted from now)."""
        with self.busy_cv:
            self.busy += 1

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("background operation %s failed", getattr(fn, "__name__", fn))
            finally:
                self._done_one()

        return run

    def _done_one(self) -> None:
        with self.busy_cv:
            self.busy -= 1
            self.busy_cv.notify_all()

    def _submit_thread(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on a thread of its own (it uses the pool itself)."""
        threading.Thread(target=self._counted(fn, *args), name="rg-bulk", daemon=True).start()

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
        self._enqueue(action.service, action)

    def _enqueue(self, service: str, work: Work) -> None:
        """Queue ``work`` behind ``service``'s earlier operations (under the lock)."""
        queue = self.op_queues.setdefault(service, deque())
        queue.append((self.generation, work))
        if len(queue) == 1:
            self._submit(self._drain, service)

    def _drain(self, service: str) -> None:
        """Carry out ``service``'s queued actions in order, one at a time."""
        while True:
            with self.lock:
                queue = self.op_queues.get(service)
                if not queue:
                    self.op_queues.pop(service, None)
                    return
                generation, work = queue[0]
            try:
                if isinstance(work, _Reconfigure):
                    self._reconfigure(work, generation)
                else:
                    self._run_action(work, generation)
            finally:
                with self.lock:
                    queue.popleft()

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the worker pool, counted as in flight for wait_quiet."""
        run = self._counted(fn, *args)
        try:
            self.pool.submit(run)
        except RuntimeError:  # the pool is shut down (killed or shutting down)
            self._done_one()

    def _service_lock(self, name: str) -> threading.Lock:
        with self.lock:
            return self.service_locks.setdefault(name, threading.Lock())

    def _run_action(self, action: Start | Stop | RestartParts | StopParts | StartParts,
                    generation: int) -> None:
        try:
            with self._service_lock(action.service):
                if generation != self.generation and not isinstance(action, Stop):
                    log.warning("%s: not carried out: %s was decided before the cluster was "
                                "lost", action.service, type(action).__name__)
                    return
                event = self._execute(action)
            if isinstance(action, Stop) and action.emergency:
                if isinstance(event, StopDone) and not event.ok:
                    log.critical("%s: emergency stop without quorum FAILED; it may still run "
                                 "here: stop it by hand or power this node off",
                                 action.service)
                return  # the table already says stopped; nobody waits for it
            if event is not None and self.running and generation == self.generation:
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

    def _status_due(self, service: str) -> float | None:
        """When ``service``'s next status check is due (the checker's clock):
        the monitor's heap sleeps until then instead of polling."""
        with self.lock:
            skip = set(self.table.get(service).disabled_parts)
            top = self.forest.service(service)
        return None if top is None else self.checker.next_due(top, skip)

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

    def fence_ack(self, node: str, timeout: float = 300.0) -> Reply:
        """``clusvcadm --fence-ack node``: an administrator made sure ``node`` is
        off. Refused for a member, a node nobody awaits, or without quorum
        (see ``fencing_driver.ack_refusal``); otherwise broadcast as
        ``NodeFenced(by="admin")`` and answered once it has been delivered
        here, i.e. once every member has acted on it at the same point."""
        with self.lock:
            refusal = ack_refusal(self.loaded.config, self.table, self.membership, node)
        if refusal is not None:
            return Reply("", self.node, *refusal)
        log.warning("fence of %s acknowledged by an administrator", node)
        rid = f"{self.node}-ack-{uuid.uuid4().hex[:12]}"
        ev = threading.Event()
        box: list[Reply] = []
        self.pending[rid] = (ev, box)
        try:
            payload = to_payload(NodeFenced(self.clock(), node, FENCED_BY_ADMIN))
            self.cluster.broadcast({**payload, ACK: rid})
            if not ev.wait(timeout):
                return Reply(rid, self.node, codes.EAGAIN, "Timed out waiting for the cluster")
            return box[0]
        finally:
            self.pending.pop(rid, None)

    # -- views -------------------------------------------------------------------------
    def status(self) -> StatusView:
        with self.lock:
            return status_view(self.loaded.config, self.model, self.table, self.node,
                               self.membership, self.cluster.online_nodes(),
                               synced=self.synced)

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

    # -- reconfiguration (through the channel; see the module docstring) ------------------
    def reload(self, new: Loaded, timeout: float = 300.0) -> list[str]:
        """Switch the cluster to ``new`` (validated, higher config_version): broadcast
        its version and wait until this node has switched at its delivery and
        carried out its own changes (only changed parts stop and start here).
        Returns what was done; raises ``ReloadRefused`` if the cluster already
        runs a newer version, ``TimeoutError`` if it did not happen in time."""
        version = new.config.config_version
        with self.lock:
            current = self.loaded.config.config_version
            if version == current and self._held_for is None:
                return [f"config_version {version} already in force"]
            if version < current:
                raise ReloadRefused(f"config_version {version} is older than {current} in "
                                    "force")
            if self._held_for is not None and version != self._held_for:
                log.error("this node holds its deliveries until it loads config_version %d "
                          "(the cluster switched to it); its file has %d", self._held_for,
                          version)
                raise ReloadRefused(f"the cluster runs config_version {self._held_for}; "
                                    f"this node's file has {version}")
            work = self._reloads.setdefault(version, _ReloadWork(version))
            self._configs[version] = new
            if self._held_for == version:
                log.info("config_version %d loaded here; switching at the held point and "
                         "replaying %d held deliveries", version, len(self._held))
                self._release_held()
                self._fence_sync()  # caught up: a quiet point
            elif not self.membership.members:
                self._configs.pop(version, None)
                raise ReloadRefused("this node is in no cluster group; nothing changed")
            else:
                self.cluster.broadcast({"kind": CONFIG, "version": version})
        if not work.done.wait(timeout):
            raise TimeoutError(f"config_version {version} was not switched to within "
                               f"{timeout:g} s")
        if work.refused:
            raise ReloadRefused(work.refused)
        return work.lines

    def _config_message(self, msg: Message) -> None:
        try:
            version = int(msg.payload["version"])
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed config message from %s", msg.sender)
            return
        self._config_version_delivered(msg, version)
        want = [str(n) for n in msg.payload.get("want_table", ())]
        if not want:
            return
        if self._held_for == version:
            self._want_table = want  # sent once switched (in _release_held)
        else:  # a newcomer waits for a table planned under this version
            self._send_table_to(want)

    def _send_table_to(self, want: list[str]) -> None:
        holders = [n for n in self.membership.members if n not in want]
        self.replica.send_table(want, holders)

    def _config_version_delivered(self, msg: Message, version: int) -> None:
        current = self.loaded.config.config_version
        if version <= current:
            log.warning("config_version %d from %s refused: not higher than %d in force",
                        version, msg.sender, current)
            work = self._reloads.pop(version, None)
            if work is not None:
                if version == current:
                    work.lines.append(f"config_version {version} already in force")
                else:
                    work.refused = f"config_version {version} is older than {current} in force"
                work.done.set()
            return
        if version not in self._configs:
            self._hold(version, [], f"{msg.sender} switched the cluster to")
            return
        self._switch(self._configs[version])

    def _hold(self, version: int, held: list[Delivery], why: str) -> None:
        """Hold every delivery (from ``held`` on) until ``version`` is loaded here."""
        self._held_for, self._held = version, held
        log.warning("%s config_version %d, which this node has not loaded: holding every "
                    "delivery until it has", why, version)
        if self.on_config_needed is not None:
            self.on_config_needed(version)

    def _version_business(self, delivery: Delivery) -> bool:
        """A newcomer's table and its config version (see the module docstring):
        True if ``delivery`` was dealt with here."""
        if self.synced:
            self._proposed = None
            return False
        if not isinstance(delivery, Message):
            return False
        payload = delivery.payload
        if payload.get("kind") == CONFIG and self.node in payload.get("want_table", ()):
            # Our own call for a table planned under our version: the table
            # will come from this point, so what we buffered is covered.
            self.replica.restart_buffer()
            return True
        if payload.get("kind") != SNAPSHOT or self.node not in payload.get("for", ()):
            return False
        theirs = payload.get("config_version")
        mine = self.loaded.config.config_version
        if not isinstance(theirs, int) or theirs == mine:
            return False
        self.replica.table_elsewhere = True  # never claim: the members hold a table
        if theirs > mine:
            if theirs in self._configs:
                self._switch(self._configs[theirs])
                return False
            self._hold(theirs, [delivery], f"{delivery.sender} sent the table under")
            return True
        if self._proposed == mine:
            return True  # another holder's copy of the table already answered
        self._proposed = mine
        log.warning("%s sent the table under config_version %d, older than this node's %d: "
                    "proposing %d and waiting for a table planned under it", delivery.sender,
                    theirs, mine, mine)
        self.replica.restart_buffer()
        self.cluster.broadcast({"kind": CONFIG, "version": mine, "want_table": [self.node]})
        return True

    def _release_held(self) -> None:
        version = self._held_for
        assert version is not None
        held, self._held, self._held_for = self._held, [], None
        self._switch(self._configs[version])
        want, self._want_table = self._want_table, []
        if want:
            self._send_table_to(want)
        self._replay(held)  # a later unknown version holds the rest again

    def _switch(self, new: Loaded) -> None:
        """Change models at this point of the stream (under the lock)."""
        version = new.config.config_version
        work = self._reloads.pop(version, None) or _ReloadWork(version)
        old_forest = self.forest
        d = diff(old_forest, new.forest)
        mine = {s.name for s in self.table if s.owner == self.node and
                s.state == State.STARTED}
        work.lines.extend(f"added {name}" for name in d.services_added)
        todo: list[_Reconfigure] = []
        for name in d.services_removed:
            top = old_forest.service(name)
            if name in mine and top is not None:
                todo.append(_Reconfigure(name, top, None, work))
        for sd in d.services_changed:
            old_top, new_top = old_forest.service(sd.name), new.forest.service(sd.name)
            if sd.name in mine and old_top is not None and new_top is not None:
                todo.append(_Reconfigure(sd.name, old_top, new_top, work, tuple(sd.stop),
                                         tuple(sd.start)))
        log.info("switching from config_version %d to %d", self.loaded.config.config_version,
                 version)
        self._set_config(new)
        self.fence.set_config(new.config)
        self._configs = {v: c for v, c in self._configs.items() if v > version}
        self.table = self.table.only(self.model.services)
        work.left = len(todo)
        for item in todo:
            self._enqueue(item.service, item)
        if not todo:
            self._finish_reload(work)
        # Place added services under the new model, at this same point of every
        # member's stream (no extra message needed). A node without a current
        # table plans nothing: it will take the table from a member.
        if self.synced:
            self._apply(NodesChanged(self.last_time))

    def _reconfigure(self, item: _Reconfigure, generation: int) -> None:
        """Carry out one service's part of a reload (on the pool, in its queue)."""
        work = item.work
        try:
            if generation != self.generation:  # the cluster was lost meanwhile
                line = f"{item.service}: not reconfigured (the cluster was lost)"
            else:
                line = self._reconfigure_service(item, work)
            with self.lock:
                work.lines.append(line)
        finally:
            with self.lock:
                work.left -= 1
                if work.left == 0:
                    self._finish_reload(work)

    def _reconfigure_service(self, item: _Reconfigure, work: _ReloadWork) -> str:
        if item.new_top is None:
            assert item.old_top is not None
            with self._service_lock(item.service):
                self.ops.stop(item.old_top)
                self.checker.forget(item.service)
            return f"stopped removed {item.service}"
        assert item.old_top is not None
        broken = None
        with self._service_lock(item.service):
            for n in stop_order(item.old_top):
                if n.name in item.stop:
                    self.ops.run(n, "stop")
            for n in start_order(item.new_top):
                if n.name in item.start:
                    rec = self.ops.run(n, "start")
                    if rec.result is not None and not rec.result.ok:
                        broken = (item.service, n.path, rec.result.rc)
                        break  # as a start does: later parts need this one
        if broken is not None:
            with self.lock:
                work.failed.append(broken)
            return f"{item.service}: start of {broken[1]} failed (rc={broken[2]})"
        return f"{item.service}: restarted {', '.join(item.start) or 'nothing'}"

    def _finish_reload(self, work: _ReloadWork) -> None:
        for line in work.lines:
            log.info("reconfiguration: %s", line)
        # A part that failed to start is a failure of the service, handled by
        # its recovery policy at once (not "started" until the next check).
        for name, path, rc in work.failed:
            self.cluster.broadcast(to_payload(StatusFailed(
                self.clock(), name, self.node, path, rc,
                f"start during reconfiguration failed: {describe_rc(rc)}")))
        work.done.set()
