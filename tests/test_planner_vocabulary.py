"""The planner's words: request ops and after-stop plans, each handled by name."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from rgmanager import codes
from rgmanager.cli.clusvcadm import SERVICE_ACTIONS
from rgmanager.cluster.base import Membership
from rgmanager.planner import (
    REQUEST_OPS,
    Op,
    PlanModel,
    Reply,
    Request,
    ServiceSpec,
    Start,
    StopDone,
    plan,
)
from rgmanager.state import AfterStop, ServiceState, State, Table

MEMBERS = Membership(("node1", "node2"), True)
NAME = "service:web"


def _model() -> PlanModel:
    return PlanModel(MappingProxyType({NAME: ServiceSpec(NAME)}),
                     MappingProxyType({"node1": 1, "node2": 2}))


def test_ops_are_plain_strings_too() -> None:
    assert REQUEST_OPS == tuple(Op)
    assert Op.ENABLE == "enable" and json.dumps({"op": Op.RELOCATE}) == '{"op": "relocate"}'
    assert {op for op, _ in SERVICE_ACTIONS.values()} == set(Op)


@pytest.mark.parametrize("op", list(Op))
@pytest.mark.parametrize("state", [State.STARTED, State.STOPPED, State.DISABLED])
def test_every_op_is_answered_or_carried_out(op: Op, state: State) -> None:
    owner = "node1" if state == State.STARTED else None
    table = Table().put(ServiceState(NAME, state, owner))
    p = plan(_model(), table, MEMBERS, Request(1.0, op, NAME, "node1", "r1"))
    replies = [a for a in p.actions if isinstance(a, Reply)]
    pending = p.table.get(NAME).request == "r1"
    assert len(replies) + pending == 1, (p.actions, p.notes)


def test_a_plain_string_op_works_and_an_unknown_one_is_invalid() -> None:
    p = plan(_model(), Table(), MEMBERS, Request(1.0, "enable", NAME, "node1", "r1"))
    assert any(isinstance(a, Start) for a in p.actions)
    p = plan(_model(), Table(), MEMBERS, Request(1.0, "bogus", NAME, "node1", "r2"))
    assert [a.code for a in p.actions if isinstance(a, Reply)] == [codes.EINVAL]


@pytest.mark.parametrize("after", list(AfterStop))
def test_every_after_stop_plan_is_carried_out(after: AfterStop) -> None:
    # A stop that ends "stopped" is `clusvcadm -s` (held) or a dependency stop
    # (see test_dependency_stop_that_ends_after_the_dependency_returned).
    stopping = ServiceState(NAME, State.STOPPING, "node1", after_stop=after, target="node2",
                            tried=("node1",) if after == AfterStop.RECOVER else (),
                            held=after == AfterStop.STOPPED)
    p = plan(_model(), Table().put(stopping), MEMBERS, StopDone(2.0, NAME, "node1", True))
    expected = {
        AfterStop.STOPPED: State.STOPPED,
        AfterStop.DISABLED: State.DISABLED,
        AfterStop.RESTART: State.STARTING,
        AfterStop.RELOCATE: State.STARTING,
        AfterStop.RECOVER: State.STARTING,
    }[after]
    ss = p.table.get(NAME)
    assert ss.state == expected
    if after in (AfterStop.RELOCATE, AfterStop.RECOVER):
        assert ss.owner == "node2"
    if after == AfterStop.RESTART:
        assert ss.owner == "node1"


def test_dependency_stop_that_ends_after_the_dependency_returned() -> None:
    """db failed and restarted while web's "dependency missing" stop ran: when
    that stop completes, web is placed again (found by test_manager_local's
    test_exclusive_and_depend once agents became fast)."""
    db, web = "service:db", "service:web"
    model = PlanModel(MappingProxyType({db: ServiceSpec(db), web: ServiceSpec(web, depend=db)}),
                      MappingProxyType({"node1": 1, "node2": 2}))
    table = Table().put(ServiceState(db, State.STARTED, "node1")).put(
        ServiceState(web, State.STOPPING, "node1", after_stop=AfterStop.STOPPED))
    p = plan(model, table, MEMBERS, StopDone(2.0, web, "node1", True))
    assert p.table.get(web).state == State.STARTING
    assert any(isinstance(a, Start) and a.service == web for a in p.actions)


def test_after_stop_survives_the_snapshot() -> None:
    ss = ServiceState(NAME, State.STOPPING, "node1", after_stop=AfterStop.RELOCATE)
    back = Table.from_json(json.loads(json.dumps(Table().put(ss).to_json())))
    assert back.get(NAME).after_stop is AfterStop.RELOCATE
    assert Table.from_json({NAME: {"name": NAME, "state": "stopped"}}).get(NAME).after_stop \
        is AfterStop.STOPPED
