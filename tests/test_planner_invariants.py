"""The planner's safety and liveness rules over random clusters and events.

Hypothesis drives the model checker of ``tests/planner_model.py``: after
every planner step no start without quorum, none on a non-member or outside
a restricted domain, never a second running copy, none elsewhere while the
last owner is lost and not fenced (most generated clusters fence; the
checker fences or acknowledges lost nodes), exclusivity and freeze kept,
the plan deterministic; after every event nothing stuck half way and
every service that can run does. ``benchmarks/model_check.py`` runs the same
checker over thousands of seeded sequences.
"""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgmanager.cluster.base import Membership
from rgmanager.planner import PlanModel, ServiceSpec, Start, Stop
from rgmanager.planner.invariants import check_actions, check_quiet, check_table
from rgmanager.state import ServiceState, State, Table

from .planner_model import HypothesisDraw, describe_model, run_sequence


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_sequences_keep_every_rule(data: st.DataObject) -> None:
    w = run_sequence(HypothesisDraw(data))
    assert not w.violations, (describe_model(w.model) + "\nevents: " + " ".join(w.trace) +
                              "\n" + "\n".join(w.violations))


# The checks themselves must be able to fail.
def _model() -> PlanModel:
    return PlanModel(MappingProxyType({
        "service:a": ServiceSpec("service:a", exclusive=True),
        "service:b": ServiceSpec("service:b")}),
        MappingProxyType({"node1": 1, "node2": 2, "node3": 3}))


def test_checks_catch_a_start_without_quorum_and_a_double_start() -> None:
    m = Membership(("node1",), False)
    bad = check_actions(_model(), m, [Start("service:a", "node1")], {"service:a": {"node2"}})
    assert any("no quorum" in b for b in bad)
    assert any("double active" in b for b in bad)
    assert check_actions(_model(), m, [Stop("service:a", "node1")], {}) == []


def test_checks_catch_exclusive_sharing_and_a_waiting_service() -> None:
    m = Membership(("node1", "node2", "node3"), True)
    t = Table().put(ServiceState("service:a", State.STARTED, "node1"),
                    ServiceState("service:b", State.STARTED, "node1"))
    assert any("exclusive" in b for b in check_table(_model(), t, m))
    t = Table().put(ServiceState("service:a", State.STARTED, "node1"),
                    ServiceState("service:b", State.STOPPED))
    assert any("could run it" in b for b in check_quiet(_model(), t, m))
    held = t.put(ServiceState("service:b", State.STOPPED, held=True))
    assert check_quiet(_model(), held, m) == []
    assert check_quiet(_model(), held, m, include_held=True) != []
    stuck = t.put(ServiceState("service:b", State.STOPPING, "node2"))
    assert any("stuck" in b for b in check_quiet(_model(), stuck, m))
