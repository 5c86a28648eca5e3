"""The safety and liveness rules every plan must keep, as checks over data.

The model checker (tests and ``benchmarks/model_check.py``) runs random
configurations and event sequences through ``plan`` and calls these after
every planner step; the three-manager tests call them on the managers'
tables. Each check returns human sentences, one per violation, so a failing
run says what broke and where. Pure functions: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from ..cluster.base import Membership
from ..state import RUNNING_STATES, State, Table
from .events import Action, RestartParts, Start, StartParts
from .fencing import fence_wait_node
from .model import PlanModel
from .placement import ILLEGAL, candidates


def check_actions(model: PlanModel, membership: Membership, actions: Iterable[Action],
                  running: Mapping[str, Set[str]]) -> list[str]:
    """Rules for what one plan asks for.

    ``running`` is where each service really runs (or may run: a start that
    was asked for and not yet undone) before these actions are carried out.
    """
    out = []
    for a in actions:
        if isinstance(a, Start | StartParts | RestartParts) and not membership.quorate:
            out.append(f"no quorum, yet {type(a).__name__} {a.service} on {a.node}")
        if not isinstance(a, Start):
            continue
        if a.node not in membership.members:
            out.append(f"start of {a.service} on {a.node}, which is not a member")
        elsewhere = set(running.get(a.service, ())) - {a.node}
        if elsewhere:
            out.append(f"double active: start of {a.service} on {a.node} while it runs on "
                       f"{', '.join(sorted(elsewhere))}")
        spec = model.services.get(a.service)
        d = spec.domain if spec else None
        if d is not None and d.restricted and d.member(a.node) is None:
            out.append(f"start of {a.service} on {a.node}, outside restricted domain {d.name}")
    return out


def check_fencing(model: PlanModel, before: Table, after: Table,
                  actions: Iterable[Action]) -> list[str]:
    """Rules for fencing, over one plan (``before`` -> ``after``).

    Never start a service on another node while its last owner is lost and
    not fenced: that node may still run it (a hang, a cut cable), and this
    is how a service ends up active twice with fencing configured. And with
    fencing on, a member that left while it occupied a service is awaited.
    """
    out = []
    awaiting = after.awaiting_fence
    for a in actions:
        if not isinstance(a, Start):
            continue
        node = fence_wait_node(before.get(a.service), awaiting)
        if node is not None and node != a.node:
            out.append(f"start of {a.service} on {a.node} while its last owner {node} is "
                       "lost and not fenced")
    if model.fencing:
        left = set(before.members) - set(after.members)
        occupied = {ss.occupies for ss in before if ss.occupies in left}
        for node in sorted(n for n in occupied if n is not None and n not in awaiting):
            out.append(f"{node} left while occupying a service, yet nobody awaits its fence")
    return out


def check_table(model: PlanModel, table: Table, membership: Membership) -> list[str]:
    """Rules any table must keep at any moment."""
    out = []
    by_node: dict[str, list[str]] = {}
    for ss in table:
        if ss.state in RUNNING_STATES and ss.owner is None:
            out.append(f"{ss.name} is {ss.state} without an owner")
        if ss.occupies is not None:
            by_node.setdefault(ss.occupies, []).append(ss.name)
        if ss.state not in RUNNING_STATES:
            continue
        spec = model.services.get(ss.name)
        d = spec.domain if spec else None
        if d is not None and d.restricted and d.member(ss.owner or "") is None:
            out.append(f"{ss.name} {ss.state} on {ss.owner}, outside restricted domain "
                       f"{d.name}")
        if membership.quorate and ss.state == State.STARTING and not ss.frozen and \
                ss.owner not in membership.members:
            out.append(f"{ss.name} starting on {ss.owner}, which is not a member")
    for node, names in sorted(by_node.items()):
        excl = [n for n in names if n in model.services and model.services[n].exclusive]
        if excl and len(names) > 1:
            out.append(f"exclusive {excl[0]} shares {node} with "
                       f"{', '.join(n for n in names if n != excl[0])}")
    return out


def check_frozen(before: Table, after: Table, membership: Membership,
                 exempt: Set[str] = frozenset()) -> list[str]:
    """A frozen service keeps its state and owner (an emergency stop on quorum
    loss excepted: safety before the freeze)."""
    out = []
    for old in before:
        if not old.frozen or old.name in exempt:
            continue
        new = after.get(old.name)
        if not membership.quorate and new.state == State.STOPPED:
            continue
        if (new.state, new.owner) != (old.state, old.owner):
            out.append(f"frozen {old.name} changed: {old.state}/{old.owner} -> "
                       f"{new.state}/{new.owner}")
    return out


def check_quiet(model: PlanModel, table: Table, membership: Membership,
                include_held: bool = False) -> list[str]:
    """Rules for a cluster where every action has completed: nothing is
    stuck half way, no request waits, and every service that could run does.
    ``include_held``: also services held stopped (after a membership change
    nothing is held). A service waiting for its lost owner's fence waits,
    with what was asked of it, until the fence; a member awaiting fence can
    run nothing new."""
    out = []
    awaiting = table.awaiting_fence
    online = [m for m in membership.members if m not in awaiting]
    for ss in table:
        if fence_wait_node(ss, awaiting) is not None:
            continue
        if ss.request:
            out.append(f"{ss.name}: request {ss.request} still waits for a reply")
        if ss.queued and membership.quorate:
            out.append(f"{ss.name}: {len(ss.queued)} queued requests never carried out")
        if ss.state in (State.STARTING, State.STOPPING, State.RECOVERING) and \
                not ss.frozen and (ss.owner in membership.members or membership.quorate):
            out.append(f"{ss.name} stuck {ss.state} (owner {ss.owner})")
        if not membership.quorate or ss.frozen:
            continue
        if ss.state == State.UNINITIALIZED:
            out.append(f"{ss.name} still uninitialized while quorate")
        if ss.state != State.STOPPED or (ss.held and not include_held):
            continue
        spec = model.services[ss.name]
        if spec.depend and spec.depend in model.services and \
                table.get(spec.depend).state != State.STARTED:
            continue
        ok = [c.node for c in candidates(model, spec, table, online)
              if c.eligible and c.score > ILLEGAL]
        if ok:
            out.append(f"{ss.name} stopped although {', '.join(ok)} could run it")
    return out
