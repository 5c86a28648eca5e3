"""Which member fences: the lowest node id among the agreed members.

There is no election.  Every node applies the same ordered membership
changes, so every node computes the same coordinator from the same
membership, and a coordinator that dies is replaced by the next change that
removes it.  Keeping this a pure function lets the manager, the planner and
the tests ask the question without any shared state.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config.model import ClusterNode

#: A member as the caller knows it: a configured node, or ``(name, nodeid)``.
Member = ClusterNode | tuple[str, int]


def _key(member: Member) -> tuple[int, str]:
    if isinstance(member, ClusterNode):
        return member.nodeid, member.name
    name, nodeid = member
    return int(nodeid), name


def coordinator(members: Iterable[Member]) -> str:
    """The name of the member with the lowest node id.

    Node ids are unique in a valid cluster.conf; should two members share one
    anyway, the name breaks the tie so that every node still picks the same
    one.  An empty membership has no coordinator (``ValueError``): a caller
    that asks has lost the cluster, which is a different event.
    """
    keys = [_key(m) for m in members]
    if not keys:
        raise ValueError("no members: there is no coordinator")
    return min(keys)[1]
