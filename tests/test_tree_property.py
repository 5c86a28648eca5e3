"""Property: for random trees, stop order undoes every dependency start order obeys."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.loader import load
from rgmanager.tree import Node, start_order, stop_order
from rgmanager.tree.delta import diff

from .conftest import HEADER
from .seed_rules import seed_rules

RULES = seed_rules()
TYPES = ["lvm", "fs", "clusterfs", "netfs", "nfsexport", "nfsclient", "ip", "smb", "script",
         "apache", "mysql", "nfsserver"]

Shape = tuple[str, list["Shape"]]
shapes: st.SearchStrategy[Shape] = st.recursive(
    st.tuples(st.sampled_from(TYPES), st.just([])),
    lambda inner: st.tuples(st.sampled_from(TYPES), st.lists(inner, max_size=5)),
    max_leaves=25,
)


def _xml(shape: Shape, parent: str, counter: itertools.count[int],
         mark: int = -1) -> str:
    """The element for ``shape``; node number ``mark`` gets ``__max_failures="3"``."""
    type_, children = shape
    parent_rule = RULES[parent]
    child_rule = parent_rule.child(type_)
    if child_rule is not None and child_rule.forbid:
        return ""
    i = next(counter)
    attrs = {
        "lvm": f'name="l{i}" vg_name="vg{i}"',
        "fs": f'name="f{i}" mountpoint="/m{i}" device="/dev/d{i}"',
        "clusterfs": f'name="c{i}" mountpoint="/c{i}" device="/dev/c{i}"',
        "netfs": f'name="n{i}" mountpoint="/n{i}" host="h" export="/e{i}"',
        "ip": f'address="10.0.{i // 250}.{i % 250 + 1}"',
        "nfsclient": f'name="nc{i}" target="t{i}"',
        "script": f'name="s{i}" file="/s{i}"',
    }.get(type_, f'name="{type_[0]}{i}"')
    if i == mark:
        attrs += ' __max_failures="3"'
    inner = "".join(_xml(c, type_, counter, mark) for c in children)
    return f"<{type_} {attrs}>{inner}</{type_}>"


def _descendants(n: Node) -> set[int]:
    return {id(x) for x in n.walk()}


def _sibling_constraints(node: Node, phase: str) -> list[tuple[Node, Node]]:
    """(x, y): in ``phase``, sibling x's subtree runs before sibling y's (levels)."""
    out: list[tuple[Node, Node]] = []
    for c in node.children:
        out += _sibling_constraints(c, phase)
    rule = node.rule
    if not rule.children:
        return out
    for x, y in itertools.permutations(node.children, 2):
        rx, ry = rule.child(x.type), rule.child(y.type)
        lx = (rx.start if phase == "start" else rx.stop) if rx else 0
        ly = (ry.start if phase == "start" else ry.stop) if ry else 0
        if phase == "start" and lx and (not ly or lx < ly):
            out.append((x, y))  # lower level first; typed before the default group
        if phase == "stop" and ly and (not lx or lx < ly):
            out.append((x, y))  # default group first; then lower stop level first
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=6))
def test_stop_order_reverses_start_dependencies(children: list[Shape]) -> None:
    counter = itertools.count()
    body = "".join(_xml(c, "service", counter) for c in children)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cluster.conf"
        path.write_text(HEADER + f'<rm><service name="s">{body}</service></rm></cluster>')
        svc = load(path, RULES).forest.services[0]
    start = start_order(svc)
    stop = stop_order(svc)
    assert sorted(map(id, start)) == sorted(map(id, stop)) == sorted(map(id, svc.walk()))
    spos = {id(n): i for i, n in enumerate(start)}
    tpos = {id(n): i for i, n in enumerate(stop)}
    for parent in svc.walk():
        for child in parent.children:
            sub = _descendants(child)
            # A parent starts before everything beneath it and stops after it.
            assert all(spos[id(parent)] < spos[x] for x in sub)
            assert all(tpos[x] < tpos[id(parent)] for x in sub)
    for phase, pos in (("start", spos), ("stop", tpos)):
        for x, y in _sibling_constraints(svc, phase):
            assert max(pos[i] for i in _descendants(x)) < min(pos[i] for i in _descendants(y))



@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=5), st.data())
def test_delta_restarts_exactly_a_changed_subtree(children: list[Shape], data: st.DataObject
                                                  ) -> None:
    """The same text gives an empty delta; a flag changed on one node stops exactly
    its subtree (in stop order) and starts it again (in start order), nothing else."""
    def text(mark: int) -> str:
        counter = itertools.count()
        body = "".join(_xml(c, "service", counter, mark) for c in children)
        return HEADER + f'<rm><service name="s">{body}</service></rm></cluster>'

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cluster.conf"
        path.write_text(text(-1))
        old = load(path, RULES).forest
        assert diff(old, load(path, RULES).forest).empty
        nodes = list(old.services[0].walk())[1:]  # in the order _xml numbered them
        k = data.draw(st.integers(0, len(nodes) - 1))
        path.write_text(text(k))
        new = load(path, RULES).forest
    target = nodes[k]
    (sd,) = diff(old, new).services_changed
    assert sd.stop == [n.name for n in stop_order(target)]
    new_target = list(new.services[0].walk())[1:][k]
    assert new_target.path == target.path and new_target.max_failures == 3
    assert sd.start == [n.name for n in start_order(new_target)]
    assert sd.reconfig == []
