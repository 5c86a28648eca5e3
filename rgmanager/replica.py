"""This node's copy of the replicated service table, kept in step with the group.

Every member applies the same ordered stream to the same planner, so copies
agree as long as each starts from the same table at the same point of the
stream. That start is what this module is about:

- The first member of a quorate group starts from the empty table. A first
  member without quorum (its corosync alone, not merged with the others yet)
  holds no table: it waits for one like a newcomer, so a node rebooting into
  a running cluster never plans from its own empty table.
- A node joining a running group waits for the table: every member that
  holds it broadcasts a *snapshot* right after the join, ordered after it;
  the newcomer takes the first, buffers everything delivered meanwhile and
  applies it on top. (Every holder, not only the lowest: whether the lowest
  old member holds the table yet is its own business, and when several nodes
  join at once it may still be waiting itself; copies cost bytes, a newcomer
  nobody answers costs a claim beside a running table.)
- A node that loses quorum holds a stale table until a quorate member sends
  it again. If nobody holding the table is left (every member lost quorum,
  or a cold start), the lowest waiting node *claims* the table: it offers its
  own, which (``claimed_table``) says nothing runs on the members, and
  ordering makes everyone agree on it. It claims only once every member has
  said (an ordered ``no_table`` message, since the last membership change)
  that it holds no table: at once if every node of corosync's ring is in the
  group, else after ``claim_after`` seconds (a few times, see
  ``MAX_CLAIM_DEFERRALS``). A member that holds a table never says so, so a
  claim is never made beside a table.
- Losing the channel (``ClusterLost``) makes this node a fresh member: empty
  table, waiting for a snapshot after it rejoins.
- A snapshot carries the config version its table was planned under; the
  manager deals with a newcomer whose version differs (see ``manager``),
  and asks for a table at a point of its choosing with ``send_table``.

What the events *mean* is the planner's business; the manager is told which
deliveries to plan (``apply``) and which to replay (``replay``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import cast

from .cluster.base import Cluster, Delivery, Membership, MembershipChange, Message
from .planner import Event, NodesChanged, claimed_table
from .state import Table

log = logging.getLogger(__name__)

#: Message kind of a table snapshot (or claim).
SNAPSHOT = "snapshot"
#: Message kind of "I hold no table" (a waiting member of a quorate group).
NO_TABLE = "no_table"
#: Timed claims put off (``claim_after`` each) while corosync sees nodes whose
#: rgmanager is not in the group; then a node that never runs rgmanager no
#: longer holds the cluster up.
MAX_CLAIM_DEFERRALS = 6


class TableReplica:
    """The table, the membership it was planned under, and whether it is current.

    Not thread-safe by itself: every method runs under the manager's lock
    (``lock``), which the claim timer takes too.
    """

    def __init__(self, node: str, cluster: Cluster, lock: threading.RLock, *,
                 order_key: Callable[[str], int], apply: Callable[[Event], None],
                 replay: Callable[[Delivery], None],
                 config_version: Callable[[], int] = lambda: 0) -> None:
        self.node = node
        self.cluster = cluster
        self.lock = lock
        self.order_key = order_key  # node id of a name (the coordinator is the lowest)
        self.apply = apply
        self.replay = replay
        self.config_version = config_version
        self.table = Table()
        self.membership = Membership((), False)
        self.last_time = 0.0
        self.synced = True  # False while waiting for a snapshot
        self.buffer: list[Delivery] = []
        self.claim_timer: threading.Timer | None = None
        self.claim_after = 5.0  # seconds without a table sender before claiming
        self.active = True  # False once the manager stopped or was killed
        # A member holding the table answered us (with a table we could not
        # take yet): never claim our own then.
        self.table_elsewhere = False
        # Members that said, since the last membership change, that they hold
        # no table: once every member has, nobody can send one, and the lowest
        # claims at once instead of after ``claim_after``.
        self.no_table_from: set[str] = set()
        self.claim_deferrals = 0  # timed claims put off for online nodes outside the group

    # -- deliveries ---------------------------------------------------------------
    def takes(self, msg: Message) -> bool:
        """Handle ``msg`` if it is replication business (a snapshot, or anything
        while the table is not current); False if the manager should plan it."""
        if msg.payload.get("kind") == SNAPSHOT:
            self._snapshot(msg)
            return True
        if msg.payload.get("kind") == NO_TABLE:
            self._no_table(msg.sender)
            return True
        if not self.synced:
            self.buffer.append(msg)
            return True
        return False

    def membership_change(self, mc: MembershipChange) -> None:
        previous = self.membership
        self.membership = mc.membership
        self.no_table_from = set()
        me_joined = self.node in mc.joined
        old = [n for n in mc.membership.members if n not in mc.joined]
        if me_joined and old:
            self._wait_for_table("joined a running cluster", [mc])
            return
        if me_joined and not mc.membership.quorate:
            # First member of a group it founded without quorum (its corosync
            # has not merged with the others yet): its table is not the
            # cluster's. When the ring merges, a member holding the table
            # sends it; if nobody does (a cold start), the claim decides.
            # Nothing buffered: when the ring merges, the member that sends
            # the table answers that change, and our replay starts there,
            # exactly as a newcomer's.
            self._wait_for_table("founded the group without quorum", [])
            return
        if me_joined:
            self.synced = True  # first member, quorate: the table we hold is the table
        if mc.joined and self.synced and old:
            # Every member holding the table sends it, ordered right after the
            # join, to the newcomers (see the module docstring).
            self._broadcast_table(mc.joined)
        if not self.synced:
            self.buffer.append(mc)
            if mc.membership.quorate:
                self._arm_claim()
                self._announce_no_table()
            return
        if previous.quorate and not mc.membership.quorate:
            log.warning("Quorum Dissolved: stopping local services; the table is stale "
                        "until a quorate member sends it again")
            # The planner decides the emergency stops (the same ones a dry run
            # shows); then this node starts nothing until it holds a quorate
            # side's table again.
            self.apply(NodesChanged(self.last_time, mc.joined, mc.left))
            self._wait_for_table("quorum lost", [])
            return
        self.apply(NodesChanged(self.last_time, mc.joined, mc.left))

    def send_table(self, to: Sequence[str], holders: Sequence[str], *,
                   passed_on: bool = False) -> None:
        """If this node is the coordinator among ``holders`` (members that hold
        the table), broadcast it for ``to``, ordered at this point.
        ``passed_on``: the table as it stood right after a claim ``to`` saw
        go by (see :meth:`_snapshot`)."""
        if self.synced and holders and min(holders, key=self.order_key) == self.node:
            self._broadcast_table(to, passed_on=passed_on)

    def _broadcast_table(self, to: Sequence[str], *, passed_on: bool = False) -> None:
        """Broadcast this node's table for ``to``, ordered at this point."""
        payload: dict[str, object] = {
            "kind": SNAPSHOT, "for": list(to), "table": self.table.to_json(),
            "time": self.last_time, "config_version": self.config_version()}
        if passed_on:
            payload["passed_on"] = True
        self.cluster.broadcast(payload)

    def restart_buffer(self) -> None:
        """Forget what was buffered: a table from a later point will cover it."""
        self.buffer = []

    def lost(self) -> None:
        """The channel is gone: forget the table; rejoin later as a fresh member."""
        self._cancel_claim()
        self.table = Table()
        self.membership = Membership((), False, self.membership.epoch)
        self.synced = False
        self.table_elsewhere = False
        self.buffer = []

    def stop(self) -> None:
        self.active = False
        self._cancel_claim()

    # -- waiting for the table ------------------------------------------------------
    def _wait_for_table(self, why: str, buffered: list[Delivery]) -> None:
        log.info("%s; waiting for the service table", why)
        self.synced = False
        self.buffer = list(buffered)
        self._arm_claim()
        if self.membership.quorate:
            self._announce_no_table()

    def _announce_no_table(self) -> None:
        """Tell the group this node holds no table (ordered after the change
        that made it wait): members that hold one answer with a snapshot
        anyway; if every member says this, the claim need not wait."""
        self.cluster.broadcast({"kind": NO_TABLE})

    def _no_table(self, sender: str) -> None:
        if self.synced:
            return
        self.no_table_from.add(sender)
        members = self.membership.members
        if not (self.membership.quorate and members and set(members) <= self.no_table_from):
            return
        # Only when every node of corosync's ring is in the group: a node whose
        # rgmanager has not joined yet (started a moment later) may be about
        # to bring the table. Then the timed claim (or that table) decides.
        if not set(self.cluster.online_nodes()) <= set(members):
            return
        log.info("no member holds the service table; the lowest node offers its own")
        self._claim()

    def _cancel_claim(self) -> None:
        if self.claim_timer is not None:
            self.claim_timer.cancel()

    def _arm_claim(self, reset: bool = True) -> None:
        """If nobody holding the table remains (every member lost quorum), the
        lowest waiting node offers its own once the group is quorate again;
        ordering makes everyone agree on it."""
        if reset:
            self.claim_deferrals = 0
        self._cancel_claim()
        self.claim_timer = threading.Timer(self.claim_after, self._claim)
        self.claim_timer.daemon = True
        self.claim_timer.start()

    def _claim(self) -> None:
        with self.lock:
            if self.synced or not self.active or self.table_elsewhere:
                return
            if not self.membership.quorate:
                # An inquorate node's table is never authoritative: a claim
                # now would let it restart what it has just stopped.
                log.info("no quorum: not offering this node's service table")
                return
            members = self.membership.members
            if not members or min(members, key=self.order_key) != self.node:
                return
            if not set(members) <= self.no_table_from:
                # A member that has not said it holds no table may hold one
                # (and is sending it): a claim now would set a second table
                # beside it. Wait until it sends it or says it has none.
                log.debug("not offering this node's service table: no word yet from %s",
                          ", ".join(sorted(set(members) - self.no_table_from)))
                self._arm_claim(reset=False)
                return
            missing = set(self.cluster.online_nodes()) - set(members)
            if missing and self.claim_deferrals < MAX_CLAIM_DEFERRALS:
                # Corosync sees nodes whose rgmanager is not (yet) in the group:
                # one of them may hold the table and be about to merge.
                self.claim_deferrals += 1
                log.info("not offering this node's service table yet: %s online but not "
                         "in the group", ", ".join(sorted(missing)))
                self._arm_claim(reset=False)
                return
            self.cluster.broadcast({"kind": SNAPSHOT, "for": list(members), "claim": True,
                                    "table": self.table.to_json(), "time": self.last_time,
                                    "config_version": self.config_version()})

    @staticmethod
    def _shared_history(buffered: list[Delivery], msg: Message) -> list[Delivery]:
        """What of ``buffered`` to replay on top of the table ``msg`` carries.

        A table stands for everything its sender had applied when it sent it.
        A holder sends it at the change that brought us into its view, so our
        replay starts at the first buffered change that has the sender among
        the members: changes before it (this node alone after founding the
        group without quorum, or cut off in a minority) are not history the
        sender shares and are dropped. A claim is delivered at one point of
        the ordered stream to waiting members that began waiting at different
        points (a cold start): the latest change before it is the same for
        every one of them, so their replay starts there. A table passed on
        after a claim stands for everything up to that claim, where the
        receiver's buffer was emptied, so all of it is replayed.
        """
        changes = [i for i, d in enumerate(buffered) if isinstance(d, MembershipChange)]
        if msg.payload.get("passed_on"):
            return buffered  # kept only since the claim this table stands for
        if msg.payload.get("claim"):
            start = changes[-1] if changes else 0
        else:
            start = next((i for i in changes
                          if msg.sender in cast(MembershipChange, buffered[i]).membership.members),
                         0)
        return buffered[start:]

    def _snapshot(self, msg: Message) -> None:
        # Whoever takes this table holds one from here on: a "no table" they
        # said before it no longer counts toward a claim.
        self.no_table_from -= set(msg.payload.get("for", ()))
        if self.synced:
            return
        if self.node not in msg.payload.get("for", ()):
            if msg.payload.get("claim") and self.node in self.membership.members:
                # A claim sent before we joined its group: its lowest taker
                # sends the table on to us right after taking it, with the state
                # of this very point, so what we buffered so far is covered.
                self.buffer = []
            return
        self.table = Table.from_json(msg.payload["table"])
        self.last_time = max(self.last_time, float(msg.payload.get("time", 0.0)))
        if msg.payload.get("claim"):
            self.table = claimed_table(self.table, self.membership.members, self.last_time)
        self.synced = True
        self.table_elsewhere = False
        self._cancel_claim()
        buffered, self.buffer = self.buffer, []
        buffered = self._shared_history(buffered, msg)
        log.info("received the service table from %s (%d services)", msg.sender,
                 len(self.table.services))
        for d in buffered:
            if isinstance(d, MembershipChange):
                self.membership = d.membership
                self.apply(NodesChanged(self.last_time, d.joined, d.left))
            else:
                self.replay(d)
        if not buffered and not msg.payload.get("passed_on"):
            self.apply(NodesChanged(self.last_time))
        if msg.payload.get("claim"):
            # Members the claim left out (they joined while it was on its way)
            # wait for a table nobody would send them: pass it on, from here.
            taken = set(msg.payload.get("for", ()))
            members = self.membership.members
            left_out = [m for m in members if m not in taken]
            if left_out:
                self.send_table(left_out, [m for m in members if m in taken], passed_on=True)
