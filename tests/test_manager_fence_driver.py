"""fencing_driver on its own: which node fences whom at a quiet point.

A recording stand-in replaces the Fencer here (its threads and agents are
tested in test_fence.py and, driven by real managers, in
test_manager_fencing.py); what matters is the driver's bookkeeping: fence
exactly the awaiting nodes while coordinating, nothing otherwise, never a
node twice, and a success only ever *broadcast*.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager import codes
from rgmanager.cluster.base import Membership
from rgmanager.config.model import ClusterConfig, ClusterNode
from rgmanager.fencing_driver import FenceDriver, OnFenced, ack_refusal
from rgmanager.planner import PlanModel, from_payload
from rgmanager.planner.events import NodeFenced
from rgmanager.planner.fencing import fencing_coordinator
from rgmanager.state import Table

NODES = ("n1", "n2", "n3", "n4")
MODEL = PlanModel(MappingProxyType({}), MappingProxyType({n: i + 1 for i, n in enumerate(NODES)}),
                  fencing=True)


class FakeFencer:
    """Records calls; ``succeed(node)`` plays the Fencer's success callback."""

    def __init__(self, config: ClusterConfig, on_fenced: OnFenced) -> None:
        self.config = config
        self.on_fenced = on_fenced
        self.active: set[str] = set()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.closed = False

    def set_config(self, config: ClusterConfig) -> None:
        self.config = config

    def fence(self, node: str) -> object:
        assert node not in self.active, f"{node} fenced twice"
        self.active.add(node)
        self.started.append(node)
        return None

    def cancel(self, node: str) -> bool:
        if node in self.active:
            self.active.discard(node)
            self.cancelled.append(node)
            return True
        return False

    def cancel_all(self) -> None:
        for node in sorted(self.active):
            self.cancel(node)

    def fencing(self) -> frozenset[str]:
        return frozenset(self.active)

    def close(self, timeout: float | None = None) -> None:
        self.closed = True
        self.cancel_all()

    def succeed(self, node: str) -> None:
        self.active.discard(node)
        self.on_fenced(node, "power", "pdu")


def driver(node: str = "n1") -> tuple[FenceDriver, FakeFencer, list[Mapping[str, Any]]]:
    sent: list[Mapping[str, Any]] = []
    d = FenceDriver(node, config(), sent.append, factory=FakeFencer, clock=lambda: 7.0)
    fencer = d.fencer
    assert isinstance(fencer, FakeFencer)
    return d, fencer, sent


def config(version: int = 1) -> ClusterConfig:
    return ClusterConfig("cluster.conf", "t", version,
                         nodes=tuple(ClusterNode(n, i + 1) for i, n in enumerate(NODES)))


def table(*awaiting: str) -> Table:
    return Table().with_awaiting_fence(awaiting)


def members(*names: str, quorate: bool = True) -> Membership:
    return Membership(tuple(names), quorate)


def test_the_coordinator_fences_exactly_the_awaiting_nodes() -> None:
    d, f, sent = driver("n1")
    d.sync(table("n3"), members("n1", "n2"), MODEL)
    assert f.started == ["n3"] and d.coordinating
    d.sync(table("n3", "n4"), members("n1", "n2"), MODEL)  # n3 is not started again
    assert f.started == ["n3", "n4"]
    d.sync(table("n4"), members("n1", "n2", "n3"), MODEL)  # n3 no longer awaited
    assert f.cancelled == ["n3"] and d.fencing() == {"n4"}
    assert sent == []


def test_a_success_is_broadcast_never_applied_and_not_started_again() -> None:
    d, f, sent = driver("n1")
    t = table("n3")
    d.sync(t, members("n1", "n2"), MODEL)
    f.succeed("n3")
    event = from_payload(dict(sent[0]))
    assert event == NodeFenced(7.0, "n3", "agent:power/pdu")
    d.sync(t, members("n1", "n2"), MODEL)  # a delivery before the NodeFenced comes back
    assert f.started == ["n3"] and d.fencing() == {"n3"}
    d.sync(table(), members("n1", "n2"), MODEL)  # delivered: n3 left the awaiting set
    assert d.fencing() == frozenset()


def test_other_members_fence_nobody() -> None:
    d, f, _ = driver("n2")
    d.sync(table("n3"), members("n1", "n2"), MODEL)
    assert f.started == [] and not d.coordinating


def test_losing_coordination_or_quorum_cancels_everything() -> None:
    d, f, _ = driver("n2")
    d.sync(table("n3"), members("n2", "n4"), MODEL)
    assert f.started == ["n3"]
    d.sync(table("n3"), members("n1", "n2", "n4"), MODEL)  # n1 joined: it coordinates
    assert f.cancelled == ["n3"] and d.fencing() == frozenset()
    d.sync(table("n3"), members("n2", "n4"), MODEL)  # n1 gone again: start over
    assert f.started == ["n3", "n3"]
    d.sync(table("n3"), members("n2", quorate=False), MODEL)
    assert f.cancelled == ["n3", "n3"] and not d.coordinating


def test_an_awaited_member_never_fences_itself() -> None:
    """n1 rejoined before it was fenced: n2 fences it, n1 does not."""
    t = table("n1")
    assert fencing_coordinator(t, members("n1", "n2", "n3"), MODEL) == "n2"
    d1, f1, _ = driver("n1")
    d1.sync(t, members("n1", "n2", "n3"), MODEL)
    assert f1.started == []
    d2, f2, _ = driver("n2")
    d2.sync(t, members("n1", "n2", "n3"), MODEL)
    assert f2.started == ["n1"]


def test_fencing_off_fences_nobody() -> None:
    off = PlanModel(MODEL.services, MODEL.node_ids, fencing=False)
    d, f, _ = driver("n1")
    d.sync(table("n3"), members("n1", "n2"), off)
    assert f.started == []


def test_reload_and_close_reach_the_fencer() -> None:
    d, f, _ = driver("n1")
    d.sync(table("n3"), members("n1", "n2"), MODEL)
    new = config(2)
    d.set_config(new)
    assert f.config is new
    d.close()
    assert f.closed and f.cancelled == ["n3"]
    d.sync(table("n3"), members("n1", "n2"), MODEL)  # closed: nothing starts
    assert f.started == ["n3"]


def test_ack_refusals() -> None:
    conf = config()
    up = members("n1", "n2")
    assert ack_refusal(conf, table("n3"), up, "n3") is None
    code, text = ack_refusal(conf, table("n3"), up, "n2") or (0, "")
    assert code == codes.EINVAL and "it is up" in text
    code, text = ack_refusal(conf, table("n3"), up, "n4") or (0, "")
    assert code == codes.EINVAL and "not awaiting fence" in text
    assert (ack_refusal(conf, table("n3"), up, "nx") or (0,))[0] == codes.ENODE
    assert (ack_refusal(conf, table("n3"), members("n1", quorate=False), "n3")
            or (0,))[0] == codes.EQUORUM


steps = st.lists(st.tuples(st.sets(st.sampled_from(NODES)),   # members
                           st.booleans(),                      # quorate
                           st.sets(st.sampled_from(NODES)),   # awaiting fence
                           st.sets(st.sampled_from(NODES))),  # fences that succeed now
                 max_size=25)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_property_fencing_follows_the_quiet_points(
        steps: list[tuple[set[str], bool, set[str], set[str]]]) -> None:
    """After every quiet point: the coordinator fences exactly the awaiting nodes
    (less those whose success is on its way), any other node fences nobody; no
    node is ever fenced twice at once (FakeFencer asserts it), and every
    success is one NodeFenced broadcast."""
    d, f, sent = driver("n2")
    successes = 0
    for names, quorate, awaiting, succeeding in steps:
        for node in sorted(succeeding & f.fencing()):
            f.succeed(node)
            successes += 1
        t = table(*awaiting)
        m = members(*sorted(names, key=NODES.index), quorate=quorate)
        d.sync(t, m, MODEL)
        if fencing_coordinator(t, m, MODEL) == "n2":
            assert f.fencing() <= awaiting
            assert d.fencing() == awaiting
        else:
            assert f.fencing() == frozenset() and d.fencing() == frozenset()
    assert len(sent) == successes
    assert all(p["kind"] == "node_fenced" for p in sent)
