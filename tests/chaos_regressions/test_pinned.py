"""Fault sequences a chaos run found a bug with, pinned as regression tests.

Each case is the smallest sequence (``benchmarks.chaos --steps``) that showed
the bug on a real three-node corosync cluster, with what it showed; a case
whose bug is not fixed yet is an expected failure with that reason. ``python -m benchmarks.chaos
--steps STEPS --seed SEED -v --keep DIR`` replays one by hand with its logs.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import run_chaos
from tests.cluster_lab import probe

pytestmark = [pytest.mark.root, pytest.mark.slow]

#: Seen on a three-node cluster, token 1000 (main at 1bd4897 plus the replica work in
#: progress that logs "founded the group without quorum"); passes since 4dd9678.
REJOIN_FENCES_THE_CLUSTER = (
    "a node that boots with its link down founds a one-node CPG group without quorum "
    "('founded the group without quorum; waiting for the service table'); when its "
    "link comes back it receives the table from node1, then takes its own first "
    "membership for news: 'node node1 left the cluster', 'node node3 left the cluster', "
    "and - while logging 'no quorum: no service is placed' - it fences both as the "
    "coordinator, switching off the whole running cluster; afterwards it sits alone with "
    "every service 'recovering' and nothing runs. Before that work in progress (main at "
    "e255d92's parent) the same sequence with node1 gave a double-active instead: node1 "
    "planned from its own empty table after the merge and started db, app and tree, "
    "which node2 was running, and the tables of node1 and node2 disagreed for good")

#: Same family, plain reboot (link up): seen with the same code, seed 20261126; passes
#: since 4dd9678.
REBOOT_REPLAYS_ITS_FOUNDING = (
    "node3's rgmanager SIGKILLed, node3 fenced and rebooted: its rgmanager founds the "
    "group without quorum, receives the table from node1 at the merge, then plans its "
    "founding no-quorum membership on that table ('no quorum; emergency stop on node2') "
    "and places everything again in its own view ('service:db: starting on node1'); its "
    "table stays 'starting' on node1 while the others show started on node2: the nodes "
    "disagree for good (a quiet point never comes)")

#: 200-fault run, seed 7, fault ~40 (main at 58c4303); passes since bd275f7. A race
#: between two IPC channels, so this case shows it only now and then; the deterministic
#: pin is ``tests/test_corosync_quorum.py::test_rebooted_node_delivers_the_merge_quorate``.
REBOOT_REPLAYS_THE_MERGE_INQUORATE = (
    "node1 killed, fenced and rebooted with corosync and rgmanager together: it receives "
    "the table from node2 and replays the merge with its own votequorum flag, which still "
    "said 'no quorum' (votequorum's notification came after CPG's confchg); it "
    "emergency-stops everything in its copy only, and at the next quorum-only change "
    "places db, app, tree and web on itself while node2 still runs them: double-active")

CASES = [
    # (steps, seed, what it showed)
    pytest.param(["kill-rgmanager:node3"], 20261126, REBOOT_REPLAYS_ITS_FOUNDING,
                 id="kill-rgmanager-node3"),
    pytest.param(["reboot-isolated:node1"], 1, REJOIN_FENCES_THE_CLUSTER,
                 id="reboot-isolated-node1"),
    pytest.param(["reboot-isolated:node2"], 1, REJOIN_FENCES_THE_CLUSTER,
                 id="reboot-isolated-node2"),
    pytest.param(["kill-node:node1"], 7, REBOOT_REPLAYS_THE_MERGE_INQUORATE,
                 id="kill-node-node1"),
]


@pytest.mark.parametrize(("steps", "seed", "showed"), CASES)
def test_pinned_sequence(steps: list[str], seed: int, showed: str) -> None:
    reason = probe()
    if reason:
        pytest.skip(reason)
    report = run_chaos(len(steps), seed, steps=steps, stop_early=True, settle=60)
    assert report.ok, f"{report.text()}\nonce showed: {showed}"
