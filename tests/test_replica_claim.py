"""The claim rule of the table replica, driven by hand.

A claim sets a table that says nothing runs on the members; made beside a
member that holds the real table, it splits the group into two tables (the
double-active of the 5-node chaos run, seed 11). So a waiting node claims
only once every member has said, since the last membership change, that it
holds no table, and a member that takes a table stops counting as one that
has none.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from rgmanager.cluster.base import Cluster, DeliverFn, Membership, MembershipChange, Message
from rgmanager.replica import NO_TABLE, SNAPSHOT, TableReplica
from rgmanager.state import Table


class Recorder(Cluster):
    """Records broadcasts; online nodes as the test sets them."""

    def __init__(self, node: str, online: tuple[str, ...]) -> None:
        super().__init__(node)
        self.sent: list[Mapping[str, Any]] = []
        self.online = online

    def start(self, deliver: DeliverFn) -> None:  # pragma: no cover - not used
        pass

    def broadcast(self, payload: Mapping[str, Any]) -> None:
        self.sent.append(dict(payload))

    def membership(self) -> Membership:  # pragma: no cover - not used
        return Membership((), False)

    def online_nodes(self) -> tuple[str, ...]:
        return self.online

    def stop(self) -> None:  # pragma: no cover - not used
        pass


def replica(node: str = "node1") -> tuple[TableReplica, Recorder]:
    cluster = Recorder(node, ("node1", "node2", "node3"))
    r = TableReplica(node, cluster, threading.RLock(), order_key=lambda n: int(n[4:]),
                     apply=lambda e: None, replay=lambda d: None)
    r.claim_after = 3600  # the timer never fires by itself here
    return r, cluster


def claims(cluster: Recorder) -> list[Mapping[str, Any]]:
    return [p for p in cluster.sent if p.get("kind") == SNAPSHOT and p.get("claim")]


def joined_running_group(r: TableReplica) -> None:
    members = ("node1", "node2", "node3")
    r.membership_change(MembershipChange(Membership(members, True, 1), ("node1",), ()))
    assert not r.synced


def test_no_claim_while_a_member_has_not_said_it_holds_no_table() -> None:
    r, cluster = replica()
    joined_running_group(r)
    for sender in ("node1", "node2"):
        r.takes(Message(sender, {"kind": NO_TABLE}))
    r._claim()  # the timer: node3 is silent, it may hold the table
    assert claims(cluster) == []
    r.takes(Message("node3", {"kind": NO_TABLE}))
    assert len(claims(cluster)) == 1, "every member said it has none: claim at once"
    r.stop()


def test_a_member_that_took_a_table_no_longer_counts_as_tableless() -> None:
    r, cluster = replica()
    joined_running_group(r)
    for sender in ("node1", "node2"):
        r.takes(Message(sender, {"kind": NO_TABLE}))
    # node2 takes a table from node3 (this snapshot is not for us) ...
    r.takes(Message("node3", {"kind": SNAPSHOT, "for": ["node2"],
                              "table": Table().to_json(), "time": 0.0}))
    # ... and node3's late "no table" (sent before it took one) arrives
    r.takes(Message("node3", {"kind": NO_TABLE}))
    r._claim()
    assert claims(cluster) == [], "node2 holds a table now"
    r.stop()
