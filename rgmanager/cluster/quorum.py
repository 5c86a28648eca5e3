"""votequorum's arithmetic, written once for every simulated cluster.

corosync's votequorum (which took it over from cman) decides quorum from
three numbers: the votes of the current members, the expected votes and the
``two_node`` flag. Expected votes never fall below the votes actually seen:
votequorum raises its expected value to the highest total of member votes it
has met, so a configured ``expected_votes`` that is lower than the cluster's
real size only counts until the whole cluster has been together once. The
quorum is then a strict majority of the expected votes (``expected // 2 +
1``), except in a ``two_node`` cluster, where one vote is enough so that
either node survives the other (fencing settles the split).

The dry run (:mod:`rgmanager.planner.dryrun`) and the in-memory cluster
(:mod:`rgmanager.cluster.sim`) both call :func:`quorate`, so the two can no
longer disagree about a partition. Remembering the highest total seen is the
caller's job (it is state; this module has none).
"""

from __future__ import annotations


def effective_expected(configured: int, seen: int) -> int:
    """The expected votes votequorum works with.

    ``configured`` is cluster.conf's ``<cman expected_votes>`` (0 when not
    set; cman then expects the sum of the configured nodes' votes, which the
    caller passes as ``seen`` or ``configured``); ``seen`` is the highest sum
    of member votes met so far. votequorum never expects fewer votes than it
    has seen, or a partition of a cluster configured too low could be quorate
    next to the rest.
    """
    return max(configured, seen, 0)


def quorum_threshold(expected: int, two_node: bool = False) -> int:
    """The votes a partition needs: a strict majority of ``expected``, or 1
    in a ``two_node`` cluster."""
    if two_node:
        return 1
    return max(expected, 0) // 2 + 1


def quorate(votes: int, expected_votes: int, two_node: bool = False) -> bool:
    """Whether members holding ``votes`` votes have quorum.

    ``expected_votes`` is raised to ``votes`` first, as votequorum does
    (the members' own votes are always "seen"); pass the highest total met
    earlier through :func:`effective_expected`.
    """
    if votes <= 0:
        return False
    return votes >= quorum_threshold(max(expected_votes, votes), two_node)


__all__ = ["effective_expected", "quorate", "quorum_threshold"]
