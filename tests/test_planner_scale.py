"""The planner at scale: no step limit, livelocks reported, work linear in the table.

Timings live in ``python -m benchmarks.bench_planner``; these tests pin the
shape of the work instead (how often a service's occupancy is looked at), so
they do not depend on how busy the machine is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import MappingProxyType

import pytest

from benchmarks.bench_planner import boot, build_model
from rgmanager.cluster.base import Membership
from rgmanager.planner import (
    Action,
    Event,
    NodesChanged,
    Plan,
    PlanModel,
    RepetitionGuard,
    ServiceSpec,
    Start,
    StartDone,
    Stop,
    StopDone,
    core,
    plan,
    settle,
)
from rgmanager.state import ServiceState, State, Table


def _complete(action: Action) -> Event | None:
    """Every start and stop succeeds at once."""
    if isinstance(action, Start):
        return StartDone(0.0, action.service, action.node, True)
    if isinstance(action, Stop) and not action.emergency:
        return StopDone(0.0, action.service, action.node, True)
    return None


def _flat_model(services: int, nodes: int) -> PlanModel:
    specs = {f"service:s{i:05d}": ServiceSpec(f"service:s{i:05d}") for i in range(services)}
    return PlanModel(MappingProxyType(specs),
                     MappingProxyType({f"node{i}": i for i in range(1, nodes + 1)}))


def test_more_than_a_thousand_services_all_get_placed() -> None:
    """1,001 services need 1,002 planner steps; a step limit of 1,000 left the
    last one 'starting' without a word."""
    model = _flat_model(1001, 3)
    members = ("node1", "node2", "node3")
    done = settle(model, Table(), Membership(members, True),
                  [NodesChanged(0.0, joined=members)], _complete)
    assert not done.livelock
    assert done.steps == 1002
    assert {ss.state for ss in done.table} == {State.STARTED}
    assert len(done.table.services) == 1001


def test_bench_boot_places_every_service() -> None:
    model = build_model(1500, 32)
    table, _, steps = boot(model)
    assert steps == 1501
    assert all(ss.state == State.STARTED for ss in table)


# -- livelock: a repeated state, reported -------------------------------------------------
def test_a_loop_that_repeats_itself_is_reported(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A planner that sends a service back and forth for ever (a bug the
    guard is there for) ends as a livelock after one round, logged at ERROR."""
    name = "service:a"
    model = _flat_model(0, 2)
    model = PlanModel(MappingProxyType({name: ServiceSpec(name)}), model.node_ids)

    def flip_flop(model: PlanModel, table: Table, membership: Membership,
                  event: Event) -> Plan:
        ss = table.get(name)
        node = "node2" if ss.owner == "node1" else "node1"
        new = ss.moved(State.STARTING, event.time, owner=node)
        return Plan(table.put(new), [Start(name, node)], changed={name})

    monkeypatch.setattr(core, "plan", flip_flop)
    clock = iter(range(1, 1000))

    def complete(action: Action) -> Event | None:
        assert isinstance(action, Start)
        return StartDone(float(next(clock)), action.service, action.node, True)

    with caplog.at_level(logging.ERROR, logger="rgmanager.planner.core"):
        done = settle(model, Table(), Membership(("node1", "node2"), True),
                      [NodesChanged(0.0, joined=("node1", "node2"))], complete)
    assert done.livelock
    assert done.steps <= 4
    assert any("livelock" in r.getMessage() for r in caplog.records)


def test_guard_ignores_the_clock_but_not_the_state() -> None:
    """Same table and pending events at another time: a repetition. A table
    that differs (another owner): not."""
    a = ServiceState("service:a", State.STARTED, "node1", last_transition=1.0)
    t0 = Table().put(a)
    guard = RepetitionGuard(t0)
    first = StartDone(1.0, "service:a", "node1", True)
    guard.queued(first)
    moved = Table().put(ServiceState("service:a", State.STARTED, "node2", last_transition=2.0))
    assert not guard.repeated(first, Plan(moved, changed={"service:a"}),
                              [StartDone(2.0, "service:a", "node2", True)])
    back = Table().put(ServiceState("service:a", State.STARTED, "node1", last_transition=3.0))
    assert not guard.repeated(StartDone(2.0, "service:a", "node2", True),
                              Plan(back, changed={"service:a"}),
                              [StartDone(3.0, "service:a", "node1", True)])
    again = Table().put(ServiceState("service:a", State.STARTED, "node2", last_transition=4.0))
    assert guard.repeated(StartDone(3.0, "service:a", "node1", True),
                          Plan(again, changed={"service:a"}),
                          [StartDone(4.0, "service:a", "node2", True)])


# -- the work is linear in the table ------------------------------------------------------
@pytest.fixture
def occupancy_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts reads of ServiceState.occupies (the old exclusivity check read it
    for every service in the table, for every candidate node)."""
    count = [0]
    original = vars(ServiceState)["occupies"]
    assert isinstance(original, property) and original.fget is not None
    getter = original.fget

    def counting(self: ServiceState) -> str | None:
        count[0] += 1
        node: str | None = getter(self)
        return node

    monkeypatch.setattr(ServiceState, "occupies", property(counting))
    yield count


@pytest.mark.parametrize("services", [500, 2000])
def test_initial_placement_reads_each_service_a_bounded_number_of_times(
        services: int, occupancy_reads: list[int]) -> None:
    model = build_model(services, 32)
    members = tuple(sorted(model.node_ids, key=model.nodeid))
    p = plan(model, Table(), Membership(members, True), NodesChanged(0.0, joined=members))
    assert sum(isinstance(a, Start) for a in p.actions) == services
    assert occupancy_reads[0] <= 8 * services  # was services x nodes x services


def test_node_down_reads_each_service_a_bounded_number_of_times(
        occupancy_reads: list[int]) -> None:
    model = build_model(2000, 32)
    table, membership, _ = boot(model)
    occupancy_reads[0] = 0
    down = "node3"
    rest = tuple(n for n in membership.members if n != down)
    p = plan(model, table, Membership(rest, True), NodesChanged(1e6, left=(down,)))
    moved = {a.service for a in p.actions if isinstance(a, Start)}
    assert moved == {ss.name for ss in table if ss.owner == down}
    assert occupancy_reads[0] <= 8 * len(table.services)


def test_a_start_completion_does_not_scan_the_table(occupancy_reads: list[int]) -> None:
    """One completion costs what it changes (plus a copy of the map), not a
    pass over every service's occupancy."""
    model = build_model(2000, 32)
    table, membership, _ = boot(model)
    name = "service:svc000005"
    ss = table.get(name)
    # Fitted to the model and indexed once, as every table the planner returns is.
    starting = table.put(ss.moved(State.STARTING, 1.0)).only(model.services)
    starting.index  # noqa: B018
    occupancy_reads[0] = 0
    p = plan(model, starting, membership, StartDone(2.0, name, ss.owner or "", True))
    assert p.table.get(name).state == State.STARTED
    assert occupancy_reads[0] <= 50
