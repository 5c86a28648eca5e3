"""The manager's side of fencing: keep a Fencer working on the agreed awaiting set.

The planner decides *who* must be fenced (the table's ``awaiting_fence``)
and the ``fence`` package knows *how*. This module joins the two on the
coordinator. After every delivery (a quiet point: the table, the
membership and the model are those every member holds at the same point of
the stream) the manager calls :meth:`FenceDriver.sync`, which

* on the coordinator starts ``Fencer.fence(node)`` for every awaiting node
  not being fenced yet, and cancels the nodes that are no longer awaiting;
* everywhere else (not the coordinator any more, no quorum, the cluster
  lost, no current table) cancels everything.

A success is never applied here: it is *broadcast* as
``NodeFenced(time, node, by="agent:<method>/<device>")`` and acts when the
ordered channel delivers it, on every member at the same point. Why no
timeout anywhere: a coordinator that dies is replaced by the membership
change that removes it, and the new coordinator's first quiet point starts
the fence again from the beginning.

Which member fences: :func:`rgmanager.planner.fencing.fencing_coordinator`,
the lowest node id among the members *not* awaiting fence themselves. A lost
node that rejoined before it was fenced is still awaited (it may still run
what it ran); if it has the lowest node id it must not be the one to fence
itself, so the next member does. Every member judges from the same table
and membership, so they still agree without an election.

Nothing here blocks: ``Fencer.fence``/``cancel`` only start or signal
threads, and ``broadcast`` queues. The driver has a lock of its own because
successes arrive on the Fencer's threads while ``sync`` runs on the
delivery thread under the manager's lock (which this module never takes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import codes
from .cluster.base import Membership
from .config.model import ClusterConfig
from .fence import Fencer
from .planner import NodeFenced, PlanModel, fenced_by_agent, to_payload
from .planner.fencing import fencing_coordinator
from .state import Table

log = logging.getLogger(__name__)

OnFenced = Callable[[str, str, str], None]


class FencerLike(Protocol):
    """What the driver needs of :class:`rgmanager.fence.Fencer` (its whole API)."""

    def set_config(self, config: ClusterConfig) -> None: ...
    def fence(self, node: str) -> object: ...
    def cancel(self, node: str) -> bool: ...
    def cancel_all(self) -> None: ...
    def fencing(self) -> frozenset[str]: ...
    def close(self, timeout: float | None = None) -> None: ...


#: Builds the Fencer: ``(config, on_fenced) -> Fencer`` (tests pass their own
#: runner, round pause, warning interval through ``functools.partial``).
FencerFactory = Callable[[ClusterConfig, OnFenced], FencerLike]


def ack_refusal(config: ClusterConfig, table: Table, membership: Membership,
                node: str) -> tuple[int, str] | None:
    """Why ``clusvcadm --fence-ack node`` must be refused, as ``(code, text)``,
    or None if the acknowledgement may go to the cluster.

    An administrator's word replaces a fence agent, so it is taken only for
    a configured node that is not in the group (a member is up: acking it
    would let its services start twice) and that the cluster awaits. Quorum
    is asked first: an inquorate node's table may be stale.
    """
    if not membership.quorate:
        return codes.EQUORUM, "this node has no quorum; acknowledge the fence on a " \
            "quorate member"
    if not node or config.node(node) is None:
        return codes.ENODE, f"{node or '(no name)'} is not a <clusternode> in cluster.conf"
    if node in membership.members:
        return codes.EINVAL, (f"{node} is a member of the cluster: it is up, and a node "
                              "that is up cannot be acknowledged as fenced (stop it, or "
                              "power it off, first)")
    if node not in table.awaiting_fence:
        return codes.EINVAL, f"{node} is not awaiting fence; nothing to acknowledge"
    return None


class FenceDriver:
    """Keeps one Fencer busy with exactly the awaiting nodes while this node coordinates."""

    def __init__(self, node: str, config: ClusterConfig,
                 broadcast: Callable[[Mapping[str, Any]], None], *,
                 factory: FencerFactory = Fencer,
                 clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self._broadcast = broadcast
        self._clock = clock
        self._lock = threading.Lock()
        # Asked of the Fencer and neither cancelled nor reported (our own record:
        # the Fencer forgets an attempt just before it calls back).
        self._started: set[str] = set()
        # Fenced and broadcast, the NodeFenced not delivered yet: not started again.
        self._reported: set[str] = set()
        self._coordinating = False
        self._closed = False
        self.fencer: FencerLike = factory(config, self._on_fenced)

    # -- driven by the manager ----------------------------------------------------
    def sync(self, table: Table, membership: Membership, model: PlanModel) -> None:
        """Bring the Fencer in line with a quiet point (delivery thread, never blocks)."""
        who = fencing_coordinator(table, membership, model)
        if who != self.node:
            if self._coordinating:
                log.info("not the fencing coordinator any more (%s is): fencing cancelled",
                         who or "nobody, without quorum")
            self.stop_all()
            return
        wanted = frozenset(table.awaiting_fence)
        with self._lock:
            if self._closed:
                return
            self._coordinating = True
            self._reported &= wanted  # delivered NodeFenced: the node left the set
            start = sorted(wanted - self._started - self._reported)
            cancel = sorted(self._started - wanted)
            self._started -= set(cancel)
            self._started |= set(start)
        for node in cancel:
            self.fencer.cancel(node)
        for node in start:
            log.info("fencing coordinator: %s must be fenced before its services run "
                     "elsewhere", node)
            self.fencer.fence(node)

    def stop_all(self) -> None:
        """Cancel every attempt (not the coordinator, no quorum, the cluster lost)."""
        with self._lock:
            self._coordinating = False
            self._reported.clear()
            self._started.clear()
        self.fencer.cancel_all()

    def set_config(self, config: ClusterConfig) -> None:
        """A reload: the Fencer uses it from its next round (waiting ones at once)."""
        self.fencer.set_config(config)

    def close(self, timeout: float | None = 5.0) -> None:
        """Shutdown: cancel everything; wait a little for the threads."""
        with self._lock:
            self._closed = True
        self.stop_all()
        self.fencer.close(timeout)

    # -- inspection (status, tests) ------------------------------------------------------
    @property
    def coordinating(self) -> bool:
        with self._lock:
            return self._coordinating

    def fencing(self) -> frozenset[str]:
        """Nodes this node is fencing, or has fenced and not yet seen delivered."""
        with self._lock:
            return frozenset(self._started | self._reported)

    # -- from the Fencer's threads ---------------------------------------------------
    def _on_fenced(self, node: str, method: str, device: str) -> None:
        """Broadcast the success; it acts when the ordered channel delivers it."""
        with self._lock:
            if node not in self._started:
                # A cancel raced the agent's success: the node is off, say so anyway
                # (the planner ignores a NodeFenced for a node nobody awaits).
                log.info("fencing %s succeeded as it was cancelled", node)
            self._started.discard(node)
            self._reported.add(node)
        by = fenced_by_agent(method, device)
        log.warning("fenced %s (%s); telling the cluster", node, by)
        try:
            self._broadcast(to_payload(NodeFenced(self._clock(), node, by)))
        except Exception:
            # The node is off, but nobody will hear it from us; fence again.
            log.exception("fenced %s but could not broadcast it", node)
            with self._lock:
                self._reported.discard(node)


__all__ = ["FenceDriver", "FencerFactory", "FencerLike", "ack_refusal"]
