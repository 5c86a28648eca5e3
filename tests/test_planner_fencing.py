"""Fencing in the planner: a lost member's services move only after NodeFenced.

Unit tests pin each rule (what is awaited, what waits, what a fence or an
acknowledgement releases, the switch, the snapshot); the property tests say
that with fencing the cluster ends where it would without it, only later,
and that the invariant behind it can fail.
"""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgmanager import codes
from rgmanager.cluster.base import Membership
from rgmanager.config.model import DomainNode, FailoverDomain
from rgmanager.planner import (
    FENCED_BY_ADMIN,
    Action,
    Event,
    NodeFenced,
    NodesChanged,
    PlanModel,
    Reply,
    Request,
    ServiceSpec,
    Start,
    StartDone,
    Stop,
    StopDone,
    coordinator,
    fenced_by_agent,
    from_payload,
    plan,
    settle,
    to_payload,
)
from rgmanager.planner.fencing import fence_duty, fence_wait_node
from rgmanager.planner.invariants import check_fencing, check_quiet
from rgmanager.state import ServiceState, State, Table

from .planner_model import HypothesisDraw, World, gen_model

NODES = {"node1": 1, "node2": 2, "node3": 3}
ALL = ("node1", "node2", "node3")
ORDERED = FailoverDomain("pref", ordered=True, restricted=False, nofailback=False,
                         nodes=(DomainNode("node1", 1), DomainNode("node2", 2),
                                DomainNode("node3", 3)))


def model(fencing: bool = True) -> PlanModel:
    return PlanModel(MappingProxyType({
        "service:web": ServiceSpec("service:web", domain=ORDERED),
        "service:db": ServiceSpec("service:db", autostart=False)}),
        MappingProxyType(NODES), fencing)


def complete(action: Action) -> Event | None:
    if isinstance(action, Start):
        return StartDone(0.0, action.service, action.node, True)
    if isinstance(action, Stop) and not action.emergency:
        return StopDone(0.0, action.service, action.node, True)
    return None


def booted(m: PlanModel) -> Table:
    done = settle(m, Table(), Membership(ALL, True), [NodesChanged(0.0, joined=ALL)], complete)
    assert done.table.get("service:web").owner == "node1"
    return done.table


def lose(m: PlanModel, table: Table, node: str, members: tuple[str, ...],
         quorate: bool = True) -> Table:
    return settle(m, table, Membership(members, quorate), [NodesChanged(1.0, left=(node,))],
                  complete).table


def test_without_fencing_a_lost_node_counts_as_fenced_at_once() -> None:
    m = model(fencing=False)
    table = lose(m, booted(m), "node1", ("node2", "node3"))
    assert table.awaiting_fence == ()
    web = table.get("service:web")
    assert (web.state, web.owner) == (State.STARTED, "node2")


def test_a_lost_owner_is_awaited_and_its_service_waits() -> None:
    m = model()
    members = Membership(("node2", "node3"), True)
    p = plan(m, booted(m), members, NodesChanged(1.0, left=("node1",)))
    assert not [a for a in p.actions if isinstance(a, Start)]
    assert p.table.awaiting_fence == ("node1",)
    web = p.table.get("service:web")
    assert (web.state, web.owner, web.last_owner, web.reason) == (
        State.RECOVERING, None, "node1", "awaiting fence of node1")
    assert "node node1 must be fenced before its services run elsewhere (service:web)" \
        in p.notes
    # Nothing moves it but the fence: neither a request nor another membership change.
    req = plan(m, p.table, members, Request(2.0, "relocate", "service:web", "node2", "r1",
                                            "node3"))
    assert [a.code for a in req.actions if isinstance(a, Reply)] == [codes.EAGAIN]
    assert req.table == p.table
    again = plan(m, p.table, Membership(("node2",), False), NodesChanged(3.0, left=("node3",)))
    assert not [a for a in again.actions if isinstance(a, Start)]
    fenced = plan(m, p.table, members, NodeFenced(4.0, "node1", fenced_by_agent("power", "pdu")))
    assert fenced.actions == [Start("service:web", "node2", recover=True)]
    assert fenced.table.awaiting_fence == ()
    assert "node node1 fenced by agent:power/pdu" in fenced.notes
    assert fenced.table.get("service:web").reason is None


def test_a_node_that_occupied_nothing_is_not_awaited() -> None:
    m = model()
    table = lose(m, booted(m), "node3", ("node1", "node2"))
    assert table.awaiting_fence == ()


def test_fenced_for_a_node_nobody_awaits_changes_nothing() -> None:
    m = model()
    table = booted(m)
    p = plan(m, table, Membership(ALL, True), NodeFenced(1.0, "node3", FENCED_BY_ADMIN))
    assert p.actions == [] and p.table == table.only(m.services)
    assert p.notes == ["node node3 fenced by an administrator (clusvcadm --fence-ack); "
                       "nothing waited for it"]


def test_a_node_lost_without_quorum_is_awaited_and_nothing_moves_before_quorum_and_fence(
        ) -> None:
    m = model()
    table = lose(m, booted(m), "node3", ("node1", "node2"))
    # node2 goes too: node1 alone has no quorum; node1 itself stops web (emergency).
    table = lose(m, table, "node2", ("node1",), quorate=False)
    table = table.put(ServiceState("service:db", State.STARTED, "node2"))  # say db ran there
    lone = Membership(("node1",), False)
    table = settle(m, table.with_members(("node1", "node2")), lone,
                   [NodesChanged(2.0, left=("node2",))], complete).table
    assert table.awaiting_fence == ("node2",)
    # Fenced (an acknowledgement) without quorum: out of the set, nothing started.
    p = plan(m, table, lone, NodeFenced(3.0, "node2", FENCED_BY_ADMIN))
    assert p.table.awaiting_fence == () and not p.actions
    assert p.table.get("service:db").state == State.RECOVERING
    # Quorum returns: now it is recovered.
    back = settle(m, p.table, Membership(("node1", "node3"), True),
                  [NodesChanged(4.0, joined=("node3",))], complete).table
    assert back.get("service:db").state == State.STARTED


def test_a_lost_node_that_rejoins_unfenced_stays_awaited_and_takes_nothing() -> None:
    m = model()
    table = lose(m, booted(m), "node1", ("node2", "node3"))
    p = plan(m, table, Membership(ALL, True), NodesChanged(2.0, joined=("node1",)))
    assert p.table.awaiting_fence == ("node1",) and not p.actions
    assert p.table.get("service:web").state == State.RECOVERING
    enable = plan(m, p.table, Membership(ALL, True),
                  Request(3.0, "enable", "service:db", "node2", "r1", "node1"))
    assert [a.code for a in enable.actions if isinstance(a, Reply)] == [codes.ENODE]
    # Fenced while it is a member (the fence reboots it): then it may take services.
    done = settle(m, p.table, Membership(ALL, True), [NodeFenced(4.0, "node1")], complete)
    web = done.table.get("service:web")
    assert (web.state, web.owner) == (State.STARTED, "node1")


def test_switching_fencing_off_releases_what_waited() -> None:
    table = lose(model(), booted(model()), "node1", ("node2", "node3"))
    off = model(fencing=False)
    p = plan(off, table, Membership(("node2", "node3"), True), NodesChanged(5.0))
    assert p.table.awaiting_fence == ()
    assert Start("service:web", "node2", recover=True) in p.actions


def test_coordinator_is_the_lowest_node_id_of_a_quorate_partition() -> None:
    m = model()
    assert coordinator(Membership(("node3", "node2"), True), m) == "node2"
    assert coordinator(Membership(("node3",), False), m) is None
    assert coordinator(Membership((), True), m) is None
    table = lose(m, booted(m), "node1", ("node2", "node3"))
    assert fence_duty(table, Membership(("node2", "node3"), True), m) == ("node2", ("node1",))
    assert fence_duty(table, Membership(("node3",), False), m) == (None, ())
    assert fence_duty(table, Membership(("node2", "node3"), True),
                      model(fencing=False)) == ("node2", ())


def test_the_awaiting_set_and_the_reason_travel_in_the_snapshot() -> None:
    m = model()
    table = lose(m, booted(m), "node1", ("node2", "node3"))
    back = Table.from_json(json.loads(json.dumps(table.to_json())))
    assert back == table and back.awaiting_fence == ("node1",)
    assert back.get("service:web").reason == "awaiting fence of node1"
    # A newer node's snapshot with a field this version does not know still reads.
    data = table.to_json()
    data["services"]["service:web"]["from_the_future"] = 1
    assert Table.from_json(data).get("service:web") == table.get("service:web")
    ev = NodeFenced(1.0, "node1", fenced_by_agent("ipmi", "ipmi-node1"))
    assert from_payload(json.loads(json.dumps(to_payload(ev)))) == ev


def test_fence_wait_node() -> None:
    awaiting = ("node1",)
    assert fence_wait_node(ServiceState("s", State.STARTED, "node1"), awaiting) == "node1"
    assert fence_wait_node(ServiceState("s", State.FAILED, last_owner="node1"), awaiting) \
        == "node1"
    assert fence_wait_node(ServiceState("s", State.RECOVERING, last_owner="node1"),
                           awaiting) == "node1"
    assert fence_wait_node(ServiceState("s", State.STOPPED, last_owner="node1"),
                           awaiting) is None
    assert fence_wait_node(ServiceState("s", State.STARTED, "node2"), awaiting) is None


# -- the invariant can fail ---------------------------------------------------------
def test_check_fencing_catches_a_start_before_the_fence_and_a_forgotten_node() -> None:
    m = model()
    before = booted(m)
    waiting = lose(m, before, "node1", ("node2", "node3"))
    bad = check_fencing(m, waiting, waiting, [Start("service:web", "node2")])
    assert bad == ["start of service:web on node2 while its last owner node1 is lost and "
                   "not fenced"]
    forgot = waiting.with_awaiting_fence(())
    assert check_fencing(m, before, forgot.with_members(("node2", "node3")), []) == [
        "node1 left while occupying a service, yet nobody awaits its fence"]
    # Waiting for a fence is not "stuck": the request waits with it.
    assert check_quiet(m, waiting, Membership(("node2", "node3"), True)) == []
    stuck = waiting.with_awaiting_fence(())
    assert any("stuck" in b for b in check_quiet(m, stuck, Membership(("node2", "node3"),
                                                                      True)))


# -- properties ---------------------------------------------------------------------
def _placed(table: Table) -> dict[str, tuple[str, str | None]]:
    return {ss.name: (str(ss.state), ss.owner) for ss in table}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_loss_then_its_fence_ends_where_a_loss_without_fencing_does(
        data: st.DataObject) -> None:
    """Fencing delays recovery, it does not change it: a member lost and then
    fenced leaves the cluster as a loss with fencing off does (domain order,
    relocation targets, dependencies alike). Exclusive services are left out:
    with them, the order of a membership change's placements decides who
    gets an empty node, and fencing moves the orphans after the rest."""
    d = HypothesisDraw(data)
    m, expected = gen_model(d)
    m = replace(m, services=MappingProxyType(
        {n: replace(s, exclusive=False) for n, s in m.services.items()}))
    worlds = {}
    for fencing in (False, True):
        w = World(replace(m, fencing=fencing), expected)
        w.boot()
        worlds[fencing] = w
    victim = d.choice(sorted(m.node_ids, key=m.nodeid))
    if len(m.node_ids) - 1 <= max(expected, len(m.node_ids)) // 2:
        return  # the loss would end quorum: nothing is recovered either way
    off, on = worlds[False], worlds[True]
    off.apply(("node-down", victim))
    on.apply(("node-down", victim))
    ran = {ss.name for ss in on.table if fence_wait_node(ss, on.table.awaiting_fence)}
    assert not any(isinstance(a, Start) and a.service in ran for a in on.last_plan.actions)
    on.apply(("fence", victim))
    assert not off.violations and not on.violations, off.violations + on.violations
    assert on.table.awaiting_fence == ()
    assert _placed(on.table) == _placed(off.table)
