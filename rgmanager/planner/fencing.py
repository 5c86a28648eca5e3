"""Fencing as the planner sees it: who is awaited, what waits, who fences.

A member that is lost while it occupies a service (``ServiceState.occupies``:
the owner of a running service, or the node where a stop failed) may still
run it: a hung node wakes up, a cut cable is mended. So with
``PlanModel.fencing`` on, the planner puts such a node into the table's
``awaiting_fence`` set and recovers its services only when the ordered
``NodeFenced`` event says it is off (a fence agent succeeded, or an
administrator ran ``clusvcadm --fence-ack``). These pure helpers answer the
questions the planner, the invariants, the status view and the manager ask
about that state; none of them looks at anything but their arguments.
"""

from __future__ import annotations

from collections.abc import Collection

from ..cluster.base import Membership
from ..state import ServiceState, State, Table
from .model import PlanModel


def awaiting_reason(node: str) -> str:
    """The ``ServiceState.reason`` of a service that waits for ``node``'s fence."""
    return f"awaiting fence of {node}"


def fence_wait_node(ss: ServiceState, awaiting: Collection[str]) -> str | None:
    """The lost, unfenced node ``ss`` may still be running on, or None.

    That is the node it occupies (owner of a running or frozen service, last
    owner of a failed one) or, for a ``recovering`` service, the owner it was
    taken from when that owner was lost.
    """
    node = ss.occupies
    if node is None and ss.state == State.RECOVERING:
        node = ss.last_owner
    return node if node is not None and node in awaiting else None


def awaiting_fence(table: Table) -> tuple[str, ...]:
    """The members lost while occupying a service and not fenced since (sorted)."""
    return table.awaiting_fence


def coordinator(membership: Membership, model: PlanModel) -> str | None:
    """The member that fences: the lowest node id among the members of a
    quorate partition; None without quorum (an inquorate partition fences
    nobody: the quorate side will fence it) or without members.

    Every node computes the same answer from the same agreed membership, so
    there is no election (see :func:`rgmanager.fence.coordinator`).
    """
    if not membership.quorate or not membership.members:
        return None
    # Imported here: the fence package brings the executor along, which the
    # planner itself never needs.
    from ..fence.coordinator import coordinator as lowest_id

    return lowest_id((m, model.nodeid(m)) for m in membership.members)


def fencing_coordinator(table: Table, membership: Membership, model: PlanModel
                        ) -> str | None:
    """The member that fences now: the lowest node id among the quorate
    members that are not themselves awaiting fence (a lost node that rejoined
    before its fence must never be asked to fence itself; the next one does),
    or None (no quorum, no such member, fencing off)."""
    if not model.fencing:
        return None
    awaiting = set(table.awaiting_fence)
    eligible = tuple(m for m in membership.members if m not in awaiting)
    return coordinator(Membership(eligible, membership.quorate, membership.epoch), model)


def fence_duty(table: Table, membership: Membership, model: PlanModel
               ) -> tuple[str | None, tuple[str, ...]]:
    """Who must fence whom now: ``(coordinator, nodes)``.

    ``nodes`` is the awaiting set, also a lost node that has rejoined before
    it was fenced (it may still run what it ran; see docs/fencing.md), and
    empty without a coordinator or with fencing off (the coordinator is then
    the plain lowest node id, for display).
    """
    if not model.fencing:
        return coordinator(membership, model), ()
    who = fencing_coordinator(table, membership, model)
    if who is None:
        return None, ()
    return who, table.awaiting_fence


__all__ = ["awaiting_fence", "awaiting_reason", "coordinator", "fence_duty", "fence_wait_node",
           "fencing_coordinator"]
