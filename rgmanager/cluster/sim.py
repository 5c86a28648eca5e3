"""The simulated backend: many nodes in one process, for fast deterministic tests.

It mimics what the manager relies on from corosync CPG + votequorum:

- *Total order and virtual synchrony.* One global sequence counter and a FIFO
  queue per node. A broadcast or a membership change appends the same item to
  the queues of every current member of the group at once, under one lock, so
  every member sees the same messages in the same order, with membership
  changes at the same point of every member's stream.
- *Groups.* The network is split into partitions (``partition``/``heal``); the
  group of a node is the started, live nodes of its partition, ordered by node
  id (the order given to ``SimNetwork``). Every change of a group produces one
  ``MembershipChange`` for its members, with a new, higher epoch.
- *Lost channel.* ``lose_channel(name)`` is corosync dying under a running
  node: the others see it leave, it is delivered ``ClusterLost`` (queued
  deliveries dropped), and ``restore_channel(name)`` lets it rejoin as a
  fresh member (its first change lists itself as joined).
- *Online vs member.* ``online_nodes()`` are the live nodes of this node's
  partition whose channel is up, started (rgmanager joined) or not.
- *Quorum.* votequorum's rule from ``cluster.quorum``: a strict majority of
  the expected votes, never fewer than the most votes seen together; with
  ``two_node`` a single node is enough, as with corosync's ``two_node: 1``.
- *Power (a MOCK).* A real power switch cannot exist in-process: every
  "machine" here is a slice of one Python process. What stands in for it:
  ``on_power_off(name, fn)`` says what switching node ``name`` off means
  (typically: kill its manager as SIGKILL would, and wipe what its
  resources left running), and ``crash(name)`` (also ``power_off``) runs
  that after taking the node out of the ring, so a crashed node is really
  stopped. ``fence_runner(by)`` wraps the executor's ``run_program`` for
  the Fencer of node ``by``: the fence agent is still a real process run
  through the real executor, and when it succeeds with ``off`` or
  ``reboot`` (the default) for a ``nodename`` of this network, the mock
  switch crashes that node. (A ``reboot`` leaves it off: booting it again
  is the test's ``restart``.) If ``by`` itself has crashed by the time its
  agent returns, the result is a killed agent: a dead coordinator switches
  nothing off and reports nothing.

Two ways to drive deliveries:

- synchronous (default): calls only enqueue; the test calls
  ``run_until_idle()``, which delivers one item at a time round-robin across
  nodes in the caller's thread. The same sequence of calls gives the same
  delivery order every time, so failures replay exactly.
- threaded: every started node has its own delivery thread, as
  ``LocalCluster`` does, to shake out races in the manager; ``wait_idle()``
  tells when everything has been delivered and handled.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import (
    Cluster,
    ClusterLost,
    DeliverFn,
    Delivery,
    Membership,
    MembershipChange,
    Message,
)
from .quorum import effective_expected, quorate

if TYPE_CHECKING:
    from ..executor import ProgramResult

log = logging.getLogger(__name__)

#: Fence actions after which the mock power switch leaves the node off.
POWER_OFF_ACTIONS = frozenset({"off", "reboot"})

#: The shape of :func:`rgmanager.executor.run_program` (what the Fencer calls).
ProgramRunner = Callable[..., "ProgramResult"]


class SimLivelock(RuntimeError):
    """``run_until_idle`` hit ``max_steps``: the handlers keep feeding each other."""


class SimCluster(Cluster):
    """One node's view of a ``SimNetwork``; get it with ``SimNetwork.node(name)``.

    All state is guarded by the network's lock, because other nodes' calls
    (crash, partition, broadcasts) change what this node will be delivered.
    """

    def __init__(self, network: SimNetwork, local_node: str, node_id: int) -> None:
        super().__init__(local_node)
        self._net = network
        self.node_id = node_id
        self._alive = True  # False between crash() and restart()
        self._channel = True  # False between lose_channel() and restore_channel()
        self._started = False
        self._deliver: DeliverFn | None = None
        self._generation = 0  # bumped on every start/stop/crash: stale threads exit
        self._queue: deque[tuple[int, Delivery]] = deque()
        self._view: tuple[str, ...] = ()  # members as of the last *enqueued* change
        self._membership = Membership((), False, 0)  # as of the last *delivered* change
        self._busy = 0  # callbacks of this node running right now
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def started(self) -> bool:
        return self._started

    def start(self, deliver: DeliverFn) -> None:
        self._net._start(self, deliver)

    def broadcast(self, payload: Mapping[str, Any]) -> None:
        self._net._broadcast(self, payload)

    def online_nodes(self) -> tuple[str, ...]:
        return self._net._online(self)

    def membership(self) -> Membership:
        with self._net._cond:
            return self._membership

    def stop(self) -> None:
        """Clean leave: the others see this node in ``left``; nothing is delivered
        to it after this returns. Stopping a node that is not started is a no-op."""
        self._net._leave(self)

    def pending(self) -> int:
        """Items queued for this node and not yet delivered."""
        with self._net._cond:
            return len(self._queue)


class SimNetwork:
    """A simulated corosync ring holding every node of a test cluster."""

    def __init__(
        self,
        nodes: Sequence[str],
        votes: Mapping[str, int] | None = None,
        expected_votes: int | None = None,
        two_node: bool = False,
        threaded: bool = False,
    ) -> None:
        if isinstance(nodes, str):
            raise TypeError("nodes must be a sequence of node names, not one string")
        names = tuple(nodes)
        if not names:
            raise ValueError("a network needs at least one node")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node names in {names!r}")
        votes = dict(votes or {})
        unknown = set(votes) - set(names)
        if unknown:
            raise ValueError(f"votes for unknown nodes: {sorted(unknown)}")
        if any(v < 0 for v in votes.values()):
            raise ValueError("votes must not be negative")
        if two_node and len(names) != 2:
            raise ValueError("two_node needs exactly two nodes")
        self._names = names
        self._votes = {n: votes.get(n, 1) for n in names}
        self._expected = (expected_votes if expected_votes is not None
                          else sum(self._votes.values()))
        self._two_node = two_node
        self._seen_votes = 0  # the highest member votes met together (votequorum's memory)
        self._threaded = threaded
        # One lock for everything: a change must reach all members' queues atomically.
        self._cond = threading.Condition(threading.RLock())
        self._seq = 0
        self._epoch = 0
        self._running = False  # inside run_until_idle (guards against re-entry)
        self._nodes = {n: SimCluster(self, n, i + 1) for i, n in enumerate(names)}
        self._part = dict.fromkeys(names, 0)  # node -> partition id; one ring at first
        self._power: dict[str, Callable[[], None]] = {}  # what switching a node off does
        #: Nodes the mock power switch turned off, in order (for assertions).
        self.switched_off: list[str] = []

    # ----------------------------------------------------------- inspection

    @property
    def names(self) -> tuple[str, ...]:
        """All node names, in node id order."""
        return self._names

    @property
    def threaded(self) -> bool:
        return self._threaded

    def node(self, name: str) -> SimCluster:
        """The ``Cluster`` object of ``name`` (always the same object)."""
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"unknown node {name!r}") from None

    def groups(self) -> list[tuple[str, ...]]:
        """The current groups (started, live nodes per partition), for assertions."""
        with self._cond:
            return [tuple(n.local_node for n in g) for g in self._groups_locked()]

    def pending(self) -> int:
        """Items queued on all nodes and not yet delivered."""
        with self._cond:
            return sum(len(n._queue) for n in self._nodes.values())

    def quorate(self, members: Sequence[str]) -> bool:
        """Whether a group made of ``members`` has quorum (votequorum's rule)."""
        votes = sum(self._votes[m] for m in members)
        return quorate(votes, effective_expected(self._expected, self._seen_votes),
                       self._two_node)

    # ------------------------------------------------------- fault injection

    def crash(self, name: str) -> None:
        """``name`` dies: it is delivered nothing more (even what was queued) and
        the other members of its group see it in ``left``; then what
        ``on_power_off`` registered for it runs (its manager is killed).
        Idempotent."""
        node = self.node(name)
        with self._cond:
            if not node._alive:
                return
            node._alive = False
            thread = self._detach_locked(node)
            self._reconfigure_locked()
            off = self._power.get(name)
        self._join(thread)
        if off is not None:
            off()

    power_off = crash

    def on_power_off(self, name: str, fn: Callable[[], None] | None) -> None:
        """What switching ``name`` off means (None: nothing beyond leaving the ring)."""
        self.node(name)  # KeyError for unknown names
        with self._cond:
            if fn is None:
                self._power.pop(name, None)
            else:
                self._power[name] = fn

    def fence_runner(self, by: str, inner: ProgramRunner | None = None) -> ProgramRunner:
        """A runner for node ``by``'s Fencer: the real agent, then the mock switch
        (see the module docstring)."""
        self.node(by)
        from ..executor import run_program  # only fencing tests need it

        run: ProgramRunner = inner if inner is not None else run_program

        def runner(argv: Sequence[str], *, stdin: bytes | None = None,
                   env: Mapping[str, str] | None = None, timeout: float) -> ProgramResult:
            result = run(argv, stdin=stdin, env=env, timeout=timeout)
            if not self.node(by).alive:
                return type(result)(None, "", f"{by} is off: its agent died with it",
                                    result.elapsed, False)
            if result.ok:
                args = _fence_args(stdin or b"")
                victim = args.get("nodename", "")
                if args.get("action", "reboot") in POWER_OFF_ACTIONS and victim in self._nodes:
                    log.warning("sim power switch: %s switched off (fenced by %s)", victim, by)
                    with self._cond:
                        self.switched_off.append(victim)
                    self.crash(victim)
            return result

        return runner

    def restart(self, name: str, deliver: DeliverFn | None = None) -> None:
        """A crashed node boots again, in the partition it was in. Like a new
        daemon it joins only when ``start`` is called: pass ``deliver`` here to
        do both at once."""
        node = self.node(name)
        with self._cond:
            if node._alive:
                raise RuntimeError(f"{name} has not crashed")
            node._alive = True
            node._membership = Membership((), False, 0)
        if deliver is not None:
            node.start(deliver)

    def partition(self, *groups: Sequence[str]) -> None:
        """Split the ring: each argument is one partition. Nodes named nowhere
        (crashed ones included) end up alone, each in a partition of its own.
        Every group whose members change gets one MembershipChange, with quorum
        recomputed for that group."""
        seen: set[str] = set()
        for group in groups:
            if isinstance(group, str):
                raise TypeError("each partition must be a sequence of names, not one string")
            for name in group:
                self.node(name)  # KeyError for unknown names
                if name in seen:
                    raise ValueError(f"{name} is in more than one partition")
                seen.add(name)
        with self._cond:
            part: dict[str, int] = {}
            for i, group in enumerate(groups):
                for name in group:
                    part[name] = i
            next_id = len(groups)
            for name in self._names:
                if name not in part:
                    part[name] = next_id
                    next_id += 1
            self._part = part
            self._reconfigure_locked()

    def lose_channel(self, name: str) -> None:
        """The group channel dies under ``name`` (corosync killed): its queued
        deliveries are dropped, it is delivered ``ClusterLost``, the others see
        it leave. Idempotent; a node that is not started is only marked."""
        node = self.node(name)
        with self._cond:
            if not node._channel:
                return
            node._channel = False
            if node._started and node._alive:
                node._queue.clear()
                node._view = ()
                self._seq += 1
                node._queue.append((self._seq, ClusterLost(f"{name}: channel lost")))
            self._reconfigure_locked()

    def restore_channel(self, name: str) -> None:
        """The channel is back: a started node rejoins as a fresh member."""
        node = self.node(name)
        with self._cond:
            if node._channel:
                return
            node._channel = True
            self._reconfigure_locked()

    def heal(self) -> None:
        """Merge everything back into one ring; each side sees the other join."""
        with self._cond:
            self._part = dict.fromkeys(self._names, 0)
            self._reconfigure_locked()

    # --------------------------------------------------------------- delivery

    def run_until_idle(self, max_steps: int = 100000) -> int:
        """Synchronous mode: deliver queued items, one at a time, round-robin over
        the nodes in node id order, until every queue is empty. Handlers may
        broadcast (or crash/partition) re-entrantly; what they enqueue is
        delivered in this same run. Returns how many items were delivered;
        raises ``SimLivelock`` if more than ``max_steps`` would be needed."""
        if self._threaded:
            raise RuntimeError("threaded network delivers by itself; use wait_idle()")
        if self._running:
            raise RuntimeError("run_until_idle() called from inside a delivery")
        self._running = True
        delivered = 0
        try:
            while True:
                progressed = False
                for name in self._names:
                    node = self._nodes[name]
                    with self._cond:
                        if not node._queue:
                            continue
                        if delivered >= max_steps:
                            raise SimLivelock(
                                f"still {self.pending()} item(s) queued after {max_steps} "
                                "deliveries")
                        item, deliver = self._take_locked(node)
                    self._call(node, deliver, item)
                    delivered += 1
                    progressed = True
                if not progressed:
                    return delivered
        finally:
            self._running = False

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Threaded mode: wait until every queue is empty and no handler is
        running; False on timeout. In synchronous mode this runs
        ``run_until_idle()``, so tests can be written for either mode."""
        if not self._threaded:
            self.run_until_idle()
            return True
        with self._cond:
            return self._cond.wait_for(self._idle_locked, timeout)

    def close(self) -> None:
        """Stop every delivery thread without telling anyone (test teardown)."""
        threads = []
        with self._cond:
            for node in self._nodes.values():
                threads.append(self._detach_locked(node))
        for thread in threads:
            self._join(thread)

    # -------------------------------------------------------------- internals

    def _start(self, node: SimCluster, deliver: DeliverFn) -> None:
        with self._cond:
            if not node._alive:
                raise RuntimeError(f"{node.local_node} has crashed; restart() it first")
            if node._started:
                raise RuntimeError(f"{node.local_node} is already started")
            node._started = True
            node._deliver = deliver
            node._generation += 1
            node._view = ()
            if self._threaded:
                node._thread = threading.Thread(
                    target=self._thread_main, args=(node, node._generation, deliver),
                    name=f"sim-delivery-{node.local_node}", daemon=True)
                node._thread.start()
            self._reconfigure_locked()

    def _leave(self, node: SimCluster) -> None:
        with self._cond:
            if not node._started:
                return
            thread = self._detach_locked(node)
            self._reconfigure_locked()
        self._join(thread)

    def _detach_locked(self, node: SimCluster) -> threading.Thread | None:
        """Take ``node`` out of its group: no more deliveries, queued ones dropped.
        Returns its delivery thread, to be joined once the lock is released."""
        node._started = False
        node._deliver = None
        node._generation += 1
        node._queue.clear()
        node._view = ()
        thread, node._thread = node._thread, None
        self._cond.notify_all()
        return thread

    @staticmethod
    def _join(thread: threading.Thread | None) -> None:
        # A handler may stop/crash its own node; its thread cannot join itself.
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _groups_locked(self) -> list[list[SimCluster]]:
        parts: dict[int, list[SimCluster]] = {}
        for name in self._names:  # node id order, so groups and members are ordered
            node = self._nodes[name]
            if node._alive and node._started and node._channel:
                parts.setdefault(self._part[name], []).append(node)
        return list(parts.values())

    def _reconfigure_locked(self) -> None:
        """Bring every group's members up to date with one MembershipChange each.

        Called after every topology or liveness change, under the lock, so a
        group's view always matches its members by the time anyone broadcasts.
        Each member gets the same Membership; joined/left are relative to what
        that member saw before, so across a heal each side sees the other join.
        """
        for group in self._groups_locked():
            members = tuple(n.local_node for n in group)
            if all(n._view == members for n in group):
                continue
            self._epoch += 1
            self._seq += 1
            self._seen_votes = max(self._seen_votes, sum(self._votes[m] for m in members))
            membership = Membership(members, self.quorate(members), self._epoch)
            for node in group:
                if node._view:
                    joined = tuple(m for m in members if m not in node._view)
                    left = tuple(m for m in self._names if m in node._view and m not in members)
                else:  # CPG: a joiner's first confchg lists only itself as joined
                    joined, left = (node.local_node,), ()
                node._view = members
                node._queue.append((self._seq, MembershipChange(membership, joined, left)))
        self._cond.notify_all()

    def _broadcast(self, sender: SimCluster, payload: Mapping[str, Any]) -> None:
        if not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a mapping, not {type(payload).__name__}")
        # Serialise in the caller so a non-JSON payload fails here, loudly.
        text = json.dumps(payload, allow_nan=False)
        with self._cond:
            if not (sender._alive and sender._started and sender._channel):
                log.debug("dropping broadcast from %s: not a member", sender.local_node)
                return
            group = next(g for g in self._groups_locked() if sender in g)
            self._seq += 1
            for node in group:  # a copy each: a receiver can't change what others see
                node._queue.append((self._seq, Message(sender.local_node, json.loads(text))))
            self._cond.notify_all()

    def _take_locked(self, node: SimCluster) -> tuple[Delivery, DeliverFn]:
        _, item = node._queue.popleft()
        if isinstance(item, MembershipChange):
            node._membership = item.membership
        elif isinstance(item, ClusterLost):
            node._membership = Membership((), False, node._membership.epoch)
        node._busy += 1
        assert node._deliver is not None  # only started nodes have queued items
        return item, node._deliver

    def _call(self, node: SimCluster, deliver: DeliverFn, item: Delivery) -> None:
        try:
            deliver(item)
        except Exception:  # the delivery loop must never die
            log.exception("delivery handler of %s failed on %r", node.local_node, item)
        finally:
            with self._cond:
                node._busy -= 1
                self._cond.notify_all()

    def _online(self, node: SimCluster) -> tuple[str, ...]:
        with self._cond:
            if not (node._alive and node._channel):
                return ()
            part = self._part[node.local_node]
            return tuple(n for n in self._names if self._part[n] == part
                         and self._nodes[n]._alive and self._nodes[n]._channel)

    def _idle_locked(self) -> bool:
        return all(not n._queue and n._busy == 0 for n in self._nodes.values())

    def _thread_main(self, node: SimCluster, generation: int, deliver: DeliverFn) -> None:
        def stale() -> bool:
            return node._generation != generation

        while True:
            with self._cond:
                self._cond.wait_for(lambda: stale() or bool(node._queue))
                if stale():
                    return
                item, _ = self._take_locked(node)
            self._call(node, deliver, item)


def _fence_args(stdin: bytes) -> dict[str, str]:
    """The ``key=value`` lines a fence agent reads (the last value of a key wins)."""
    args: dict[str, str] = {}
    for line in stdin.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            args[key.strip()] = value.strip()
    return args


__all__ = ["POWER_OFF_ACTIONS", "SimCluster", "SimLivelock", "SimNetwork"]
