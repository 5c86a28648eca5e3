"""votequorum's rule, as a table: one function decides quorum for the dry run
and the in-memory cluster alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgmanager.cluster.quorum import effective_expected, quorate, quorum_threshold

# votes of the members, expected votes, two_node -> quorate
TABLE = [
    (2, 3, False, True),    # 2 of 3: majority
    (1, 3, False, False),   # 1 of 3
    (2, 4, False, False),   # half is not a majority
    (3, 4, False, True),
    (3, 5, False, True),
    (2, 5, False, False),
    (1, 1, False, True),    # one-node cluster
    (0, 3, False, False),   # nobody (or only zero-vote members)
    (3, 1, False, True),    # expected below the votes present: raised to them
    (2, 3, False, True),    # expected_votes=3 on five nodes: 2 of 3 suffice...
    (4, 3, False, True),    # ...until the members' votes raise it (4 -> need 3)
    (1, 2, True, True),     # two_node: either node alone
    (2, 2, True, True),
    (0, 2, True, False),    # two_node still needs a member with a vote
    (1, 2, False, False),   # the same without two_node
    (3, 5, True, True),     # heavy node: votes, not members, count
]


@pytest.mark.parametrize(("votes", "expected", "two_node", "want"), TABLE)
def test_quorum_table(votes: int, expected: int, two_node: bool, want: bool) -> None:
    assert quorate(votes, expected, two_node) is want


@pytest.mark.parametrize(("expected", "two_node", "threshold"),
                         [(1, False, 1), (2, False, 2), (3, False, 2), (4, False, 3),
                          (5, False, 3), (6, False, 4), (0, False, 1), (2, True, 1)])
def test_threshold_table(expected: int, two_node: bool, threshold: int) -> None:
    assert quorum_threshold(expected, two_node) == threshold


def test_expected_never_falls_below_what_was_seen() -> None:
    # expected_votes=3 configured on a five-node cluster that was once whole:
    # a partition of two is not quorate next to the other three.
    expected = effective_expected(3, seen=5)
    assert expected == 5
    assert quorate(3, expected) and not quorate(2, expected)


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 100))
def test_two_partitions_never_both_quorate(a: int, b: int, configured: int) -> None:
    """Without two_node, two disjoint partitions of a cluster whose whole was
    seen cannot both have quorum (the property quorum exists for)."""
    expected = effective_expected(configured, seen=a + b)
    assert not (quorate(a, expected) and quorate(b, expected))


@given(st.integers(0, 50), st.integers(0, 50), st.booleans())
def test_more_votes_never_lose_quorum(votes: int, expected: int, two_node: bool) -> None:
    if quorate(votes, expected, two_node):
        assert quorate(votes + 1, expected, two_node)


def test_dry_run_and_votequorum_agree_below_total_votes() -> None:
    """The case simulate.py and cluster/sim.py disagreed on: expected_votes=3
    on five one-vote nodes. The dry run starts from the whole cluster, so
    votequorum expects all five votes: two members are not quorate, three are."""
    from rgmanager.planner.dryrun import Quorum

    five = Quorum(dict.fromkeys("abcde", 1), expected=3)
    assert not five.quorate(["a", "b"]) and five.quorate(["a", "b", "c"])
    assert five.quorate(["a", "b"]) == quorate(2, effective_expected(3, seen=5))
