"""Fault sequences a chaos run found a bug with, pinned as regression tests.

Each case is the smallest sequence (``benchmarks.chaos --steps``) that showed
the bug on a real three-node corosync cluster; a case whose bug is not fixed
yet is an expected failure with the reason. ``python -m benchmarks.chaos
--steps STEPS --seed SEED -v --keep DIR`` replays one by hand with its logs.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import run_chaos
from tests.cluster_lab import probe

pytestmark = [pytest.mark.root, pytest.mark.slow]

REJOIN_FOUNDER = (
    "a node that (re)boots while cut off forms a one-node CPG group without quorum "
    "and, when its link comes back and the groups merge, plans from its own empty table "
    "(it never waits for the running cluster's table): as node1, the lowest node id, it "
    "starts every service that node2 already runs (double-active) and the tables of "
    "node1 and node2 disagree for good")

CASES = [
    pytest.param(["reboot-isolated:node1"], 1, id="reboot-isolated-node1",
                 marks=pytest.mark.xfail(reason=REJOIN_FOUNDER, strict=False)),
]


@pytest.mark.parametrize(("steps", "seed"), CASES)
def test_pinned_sequence(steps: list[str], seed: int) -> None:
    reason = probe()
    if reason:
        pytest.skip(reason)
    report = run_chaos(len(steps), seed, steps=steps)
    assert report.ok, report.text()
