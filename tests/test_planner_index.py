"""The indexes that make the planner linear say what a full scan would say.

A planner step edits a TableDraft that keeps the table's index (waiting
services, queued requests, node occupants) current, and placement looks at
one node's occupants instead of the whole table. Both are checked here
against the plain definitions, for random tables and changes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.config.model import DomainNode, FailoverDomain
from rgmanager.planner.model import PlanModel, ServiceSpec
from rgmanager.planner.placement import ILLEGAL, Candidate, candidates
from rgmanager.state import RUNNING_STATES, ServiceState, State, Table, TableIndex

NODES = ("node1", "node2", "node3", "node4")
NAMES = tuple(f"service:s{i}" for i in range(8))

states = st.builds(
    ServiceState,
    name=st.sampled_from(NAMES),
    state=st.sampled_from(list(State)),
    owner=st.none() | st.sampled_from(NODES),
    last_owner=st.none() | st.sampled_from(NODES),
    queued=st.sampled_from([(), ('{"kind": "request"}',)]),
)
tables = st.lists(states, max_size=8).map(lambda ss: Table().put(*ss))


@settings(max_examples=200, deadline=None)
@given(tables, st.lists(states, max_size=12))
def test_a_draft_keeps_the_index_of_what_it_holds(table: Table, puts: list[ServiceState]
                                                  ) -> None:
    before = (dict(table.services), table.index)
    draft = table.edit()
    for ss in puts:
        draft.put(ss)
        assert draft.waiting == TableIndex.of(draft.services.values()).waiting
    done = draft.freeze()
    expected = TableIndex.of(done.services.values())
    assert done.index.waiting == expected.waiting
    assert done.index.queued == expected.queued
    assert dict(done.index.occupants) == dict(expected.occupants)
    # The table the draft started from is untouched.
    assert (dict(table.services), table.index) == before
    assert table.index == TableIndex.of(table.services.values())


def _reference_score(spec: ServiceSpec, node: str, online: Sequence[str],
                     ss: ServiceState | None) -> int:
    """node_should_start as first written: lists, a member lookup per question."""
    if node not in online:
        return ILLEGAL
    d = spec.domain
    if d is None:
        return 3
    online_members = [m for m in d.nodes if m.name in online]
    me = d.member(node)
    if me is None:
        if d.restricted:
            return ILLEGAL
        return 3 if not online_members else 1
    result = 3
    if d.ordered:
        def prio(p: int) -> int:
            return p if 1 <= p <= 100 else 101
        result = 3 if prio(me.priority) == min(prio(m.priority) for m in online_members) else 2
    if d.nofailback and ss is not None and ss.state == State.STARTED and ss.owner in online \
            and d.member(ss.owner or "") is not None:
        if node == ss.owner:
            return 3
        if result == 3:
            return 2
    return result


def _reference_conflict(model: PlanModel, spec: ServiceSpec, node: str, table: Table
                        ) -> str | None:
    """The exclusivity check as first written: a scan of the whole table."""
    others = [s for s in table if s.occupies == node and s.name != spec.name]
    if spec.exclusive and others:
        return f"exclusive, node runs {others[0].name}"
    for s in others:
        other = model.services.get(s.name)
        if other is not None and other.exclusive:
            return f"node runs exclusive {s.name}"
    return None


domains = st.none() | st.builds(
    FailoverDomain, name=st.just("d"), ordered=st.booleans(), restricted=st.booleans(),
    nofailback=st.booleans(),
    nodes=st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 3)), max_size=4,
                   unique_by=lambda t: t[0]).map(
        lambda ms: tuple(DomainNode(n, p) for n, p in ms)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), domains), min_size=len(NAMES), max_size=len(NAMES)),
       tables, st.lists(st.sampled_from(NODES), unique=True), st.sampled_from(NAMES),
       st.lists(st.sampled_from(NODES), unique=True, max_size=2))
def test_candidates_match_a_full_scan(flags: list[tuple[bool, FailoverDomain | None]],
                                      table: Table, online: list[str], name: str,
                                      exclude: Collection[str]) -> None:
    specs = {n: ServiceSpec(n, domain=d, exclusive=x)
             for n, (x, d) in zip(NAMES, flags, strict=True)}
    model = PlanModel(MappingProxyType(specs),
                      MappingProxyType({n: i for i, n in enumerate(NODES, 1)}))
    spec = specs[name]
    ss = table.get(name)
    got: list[Candidate] = candidates(model, spec, table, online, exclude)
    assert [c.node for c in got] == list(NODES)
    for c in got:
        assert c.score == _reference_score(spec, c.node, online, ss), c
        conflict = _reference_conflict(model, spec, c.node, table)
        eligible = c.score > ILLEGAL and c.node not in exclude and conflict is None
        assert c.eligible == eligible, c
        if c.score > ILLEGAL and c.node not in exclude and conflict is not None:
            assert c.reason.endswith(f"; {conflict}"), c


def test_running_states_occupy_their_owner() -> None:
    for state in RUNNING_STATES:
        ss = ServiceState("service:a", state, "node1")
        assert TableIndex.of([ss]).occupants == {"node1": frozenset({"service:a"})}
