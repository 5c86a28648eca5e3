"""The corosync backend's quorum is an agreed event (no corosync needed).

The backend turns CPG's callbacks into deliveries. These tests feed it the
callbacks corosync's CPG service sends each node (group confchgs, then the
totem confchg of the same ring change; our own join, then the initial totem
confchg) and check the quorate flag of what it delivers:

- it is computed from the ring of the change it comes with, never from the
  ring before it and never from votequorum's own timing;
- nodes that go through the same ring changes deliver the same memberships
  with the same flags (the property that keeps every node's copy of the
  table equal).

The pinned case is the double start that the 200-fault chaos run found
(seed 7, a rebooted node1): votequorum told the rebooted node "quorate" only
after the merge had been delivered, so it replayed the merge as inquorate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.cluster import _cpg as cpg
from rgmanager.cluster.base import MembershipChange
from rgmanager.cluster.corosync import CorosyncCluster
from rgmanager.cluster.quorum import quorate as votequorum_quorate

JOIN, LEAVE, NODEDOWN, NODEUP, PROCDOWN = 1, 2, 3, 4, 5
PID = 4242


def backend(local: int, n: int = 3, **kw: Any) -> tuple[CorosyncCluster, list[MembershipChange]]:
    """A backend for node ``local`` of ``n``, delivering into a list; driven by
    hand through the events its C callbacks would queue."""
    c = CorosyncCluster(f"node{local}", {i: f"node{i}" for i in range(1, n + 1)}, **kw)
    c._local_nodeid = local
    out: list[MembershipChange] = []
    c._deliver = lambda d: out.append(d) if isinstance(d, MembershipChange) else None
    return c, out


def feed(c: CorosyncCluster, *events: tuple[Any, ...]) -> None:
    c._events.extend(events)
    c._process_events()


def confchg(members: list[int], left: list[tuple[int, int]] = (),  # type: ignore[assignment]
            joined: list[tuple[int, int]] = ()) -> tuple[Any, ...]:  # type: ignore[assignment]
    """A group confchg: member node ids; (node id, reason) left and joined."""
    return ("confchg", [(m, PID, 0) for m in members], [(n, PID, r) for n, r in left],
            [(n, PID, r) for n, r in joined])


def ring(*ids: int) -> tuple[Any, ...]:
    return ("ring", list(ids))


def flags(out: list[MembershipChange]) -> list[tuple[tuple[str, ...], bool]]:
    return [(mc.membership.members, mc.membership.quorate) for mc in out]


def test_rebooted_node_delivers_the_merge_quorate() -> None:
    """Chaos seed 7, fault ~40: node1 rebooted with corosync and rgmanager
    together founds the group alone, then its ring merges with node2 and
    node3. The merge must be delivered quorate: its ring holds 3 of 3 votes,
    whatever votequorum would say and whenever it would say it."""
    c, out = backend(1)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1))
    feed(c, confchg([1, 2, 3], joined=[(2, NODEUP), (3, NODEUP)]), ring(1, 2, 3))
    assert flags(out) == [(("node1",), False), (("node1", "node2", "node3"), True)]
    assert out[1].joined == ("node2", "node3")
    # and node2 delivered the same merge with the same flag
    c2, out2 = backend(2)
    feed(c2, confchg([2, 3], joined=[(2, JOIN)]), ring(2, 3))
    feed(c2, confchg([1, 2, 3], joined=[(1, NODEUP)]), ring(1, 2, 3))
    assert flags(out2)[-1] == flags(out)[-1]


def test_merge_is_held_until_its_ring_change() -> None:
    c, out = backend(1)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1))
    feed(c, confchg([1, 2], joined=[(2, NODEUP)]))
    assert len(out) == 1, "the merge waits for the ring it belongs to"
    feed(c, ring(1, 2))
    assert flags(out)[-1] == (("node1", "node2"), True)


def test_join_after_an_early_initial_ring_is_delivered_at_once() -> None:
    """Another process's join (any CPG group) between our initialize and our
    join brings CPG's one initial totem confchg before our own join: the ring
    is known then, and our join must not wait for a ring that never comes
    (a lone founder would never see its membership)."""
    c, out = backend(1)
    feed(c, ring(1, 2, 3), confchg([1], joined=[(1, JOIN)]))
    assert flags(out) == [(("node1",), True)]


def test_minority_never_delivers_the_old_ring_quorum() -> None:
    c, out = backend(3)
    feed(c, confchg([1, 2, 3], joined=[(3, JOIN)]), ring(1, 2, 3))
    feed(c, confchg([3], left=[(1, NODEDOWN), (2, NODEDOWN)]), ring(3))
    assert flags(out) == [(("node1", "node2", "node3"), True), (("node3",), False)]
    assert out[1].left == ("node1", "node2")


def test_node_without_rgmanager_counts_for_quorum() -> None:
    """corosync's ring decides the votes, as votequorum's would: node2 runs
    corosync only, node3 is down; node1 alone in the group is quorate."""
    c, out = backend(1)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1, 2))
    assert flags(out) == [(("node1",), True)]
    assert c.online_nodes() == ("node1", "node2")
    feed(c, ring(1))  # node2's corosync goes: a quorum-only change
    assert flags(out)[-1] == (("node1",), False)
    assert out[-1].joined == () and out[-1].left == ()


def test_process_join_and_leave_keep_the_ring_quorum() -> None:
    c, out = backend(1)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1, 2, 3))
    feed(c, confchg([1, 2], joined=[(2, JOIN)]))
    feed(c, confchg([1], left=[(2, PROCDOWN)]))
    assert flags(out) == [(("node1",), True), (("node1", "node2"), True), (("node1",), True)]


def test_ring_change_without_group_change_and_same_quorum_delivers_nothing() -> None:
    c, out = backend(1)
    feed(c, confchg([1, 2], joined=[(1, JOIN)]), ring(1, 2))
    feed(c, ring(1, 2, 3))
    assert len(out) == 1


def test_down_and_up_in_one_ring_change_are_two_deliveries_with_the_new_quorum() -> None:
    c, out = backend(1, 5)
    feed(c, confchg([1, 2, 3], joined=[(1, JOIN)]), ring(1, 2, 3))
    feed(c, confchg([1, 3], left=[(2, NODEDOWN)]), confchg([1, 3, 4], joined=[(4, NODEUP)]),
         ring(1, 3, 4))
    assert flags(out)[1:] == [(("node1", "node3"), True), (("node1", "node3", "node4"), True)]
    assert out[1].left == ("node2",) and out[2].joined == ("node4",)


def test_two_node_waits_for_all_then_survives_alone() -> None:
    c, out = backend(1, 2, two_node=True)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1))
    assert flags(out) == [(("node1",), False)], "alone at start: wait_for_all"
    feed(c, confchg([1, 2], joined=[(2, NODEUP)]), ring(1, 2))
    feed(c, confchg([1], left=[(2, NODEDOWN)]), ring(1))
    assert flags(out)[1:] == [(("node1", "node2"), True), (("node1",), True)]


def test_two_node_waits_again_after_corosync_came_back() -> None:
    """A new corosync waits for both nodes again (wait_for_all), and so does
    the backend that reconnects to it."""
    c, out = backend(1, 2, two_node=True)
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1, 2))
    c._disconnect()  # corosync gone; the loop reconnects to a new one
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1))
    assert flags(out) == [(("node1",), True), (("node1",), False)]


def test_expected_votes_never_below_the_configured_total() -> None:
    """expected_votes=1 on three nodes: votequorum would raise it to what it
    has seen, which differs per node; we take the configured total."""
    c, out = backend(3, expected_votes=1)
    feed(c, confchg([3], joined=[(3, JOIN)]), ring(3))
    assert flags(out) == [(("node3",), False)]


def test_votes_from_cluster_conf() -> None:
    c, out = backend(1, votes={"node1": 3})  # 5 votes in all, 3 needed
    feed(c, confchg([1], joined=[(1, JOIN)]), ring(1))
    assert flags(out) == [(("node1",), True)]


# ------------------------------------------------------------- the property

@dataclass
class Net:
    """What corosync would send each node: components of the ring, which nodes
    run rgmanager, and one backend per node running it."""

    n: int
    comps: list[frozenset[int]]
    running: set[int] = field(default_factory=set)
    nodes: dict[int, tuple[CorosyncCluster, list[MembershipChange]]] = field(default_factory=dict)

    def comp(self, node: int) -> frozenset[int]:
        return next(c for c in self.comps if node in c)

    def group(self, comp: frozenset[int]) -> list[int]:
        return sorted(comp & self.running)

    def start(self, node: int) -> None:
        self.running.add(node)
        comp = self.comp(node)
        self.nodes[node] = backend(node, self.n)
        for other in self.group(comp):
            members = self.group(comp)
            reason = JOIN
            feed(self.nodes[other][0], confchg(members, joined=[(node, reason)]))
        feed(self.nodes[node][0], ring(*sorted(comp)))

    def stop(self, node: int) -> None:
        self.running.discard(node)
        del self.nodes[node]
        comp = self.comp(node)
        for other in self.group(comp):
            feed(self.nodes[other][0], confchg(self.group(comp), left=[(node, PROCDOWN)]))

    def repartition(self, comps: list[frozenset[int]]) -> None:
        old = {node: self.comp(node) for node in range(1, self.n + 1)}
        self.comps = comps
        for node in sorted(self.running):
            before, after = old[node], self.comp(node)
            gone = sorted((before - after) & self.running)
            came = sorted((after - before) & self.running)
            c = self.nodes[node][0]
            events = []
            if gone:
                events.append(confchg(sorted((before & after) & self.running),
                                      left=[(g, NODEDOWN) for g in gone]))
            if came:
                events.append(confchg(self.group(after), joined=[(j, NODEUP) for j in came]))
            feed(c, *events, ring(*sorted(after)))


def partitions(n: int) -> st.SearchStrategy[list[frozenset[int]]]:
    return st.lists(st.integers(0, 2), min_size=n, max_size=n).map(
        lambda labels: [frozenset(i + 1 for i, lab in enumerate(labels) if lab == k)
                        for k in set(labels)])


STEPS = st.lists(st.one_of(st.tuples(st.just("split"), st.integers(0, 10**6)),
                           st.tuples(st.just("toggle"), st.integers(1, 5))),
                 min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 5), steps=STEPS, data=st.data())
def test_nodes_of_one_ring_deliver_the_same_quorum(n: int, steps: list[tuple[str, int]],
                                                   data: st.DataObject) -> None:
    net = Net(n, [frozenset(range(1, n + 1))])
    for node in range(1, n + 1):
        net.start(node)
    for kind, arg in steps:
        if kind == "split":
            net.repartition(data.draw(partitions(n)))
        else:
            node = (arg - 1) % n + 1
            if node in net.running:
                net.stop(node)
            else:
                net.start(node)
        # every running node's last delivery is its group with its ring's quorum
        for comp in net.comps:
            want = votequorum_quorate(len(comp), n)
            members = tuple(f"node{m}" for m in net.group(comp))
            for node in net.group(comp):
                c, out = net.nodes[node]
                assert out, f"node{node} delivered nothing"
                assert flags(out)[-1] == (members, want), (kind, arg, net.comps)
                assert c.membership().quorate == want
    assert all(not c._held for c, _ in net.nodes.values())
    assert cpg.CPG_REASON_NODEDOWN == NODEDOWN and cpg.CPG_REASON_NODEUP == NODEUP
