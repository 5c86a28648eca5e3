"""The cluster lab's and the rgmanager failover benchmark's pure parts.

No namespaces here (no root needed): the cluster.conf the lab writes loads
and plans the fence calls the real tests rely on; the witness and fence-record
logs parse; a run's parts add up to its total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.failover_rgmanager import daemon_times, parts
from rgmanager.agents.discovery import RuleSet
from rgmanager.fence import fence_plan
from rgmanager.loader import load

from .cluster_lab import (
    FENCE_NETNS,
    FENCE_RECORD,
    CorosyncLab,
    fence_records,
    ordered_domain,
    rgm_cluster_conf,
    witness_events,
    witness_service,
)


@pytest.fixture
def lab3() -> Iterator[CorosyncLab]:
    """A lab object that is never set up (names and a directory only)."""
    lab = CorosyncLab(3, show_netns=True)
    try:
        yield lab
    finally:
        lab.close()


def body() -> str:
    return (f"<failoverdomains>{ordered_domain('d', (2, 3, 1), nofailback=True)}"
            "</failoverdomains>" + witness_service("web", Path("/x/lsb"), "d"))


def test_lab_conf_loads_and_fences_through_the_switch_then_the_record(
        lab3: CorosyncLab, rules: RuleSet, tmp_path: Path) -> None:
    path = tmp_path / "cluster.conf"
    path.write_text(rgm_cluster_conf(lab3, body(), version=3, fence_delay={2: 1.5},
                                     record=tmp_path / "fence.log"))
    config = load(path, rules).config
    assert config.name == lab3.cluster_name and config.config_version == 3
    plan = fence_plan(config, "node2")
    assert [m.name for m in plan] == ["power"]
    switch, record = plan[0].calls
    assert (switch.agent, record.agent) == (str(FENCE_NETNS), str(FENCE_RECORD))
    assert switch.args["port"] == lab3.node(2).netns and switch.delay == 1.5
    assert record.args["logfile"] == str(tmp_path / "fence.log") and record.delay == 0
    assert fence_plan(config, "node1")[0].calls[0].delay == 0
    domain = config.rm.domain("d")
    assert domain is not None and domain.ordered and domain.nofailback
    assert [(n.name, n.priority) for n in domain.nodes] == [("node2", 1), ("node3", 2),
                                                            ("node1", 3)]


def test_lab_conf_without_fencing_has_no_method(
        lab3: CorosyncLab, rules: RuleSet, tmp_path: Path) -> None:
    path = tmp_path / "cluster.conf"
    path.write_text(rgm_cluster_conf(lab3, body(), fence=False))
    config = load(path, rules).config
    assert all(fence_plan(config, f"node{i}") == () for i in (1, 2, 3))


def test_two_node_lab_conf_loads(rules: RuleSet, tmp_path: Path) -> None:
    lab = CorosyncLab(2)
    try:
        path = tmp_path / "cluster.conf"
        path.write_text(rgm_cluster_conf(lab, witness_service("web", Path("/x/lsb")),
                                         extra_device=("dummy", "fence_dummy",
                                                       'status_file="/s/{node}"')))
        config = load(path, rules).config
        calls = fence_plan(config, "node2")[0].calls
        assert [c.device for c in calls] == ["switch", "dummy"]
        assert calls[1].args["status_file"] == "/s/node2"
    finally:
        lab.close()


def test_witness_and_fence_record_logs_parse() -> None:
    text = ("start web node1 1795677924.569122253\nstop web node1 1795677925.5\n"
            "garbage\nstart db node2 notatime\n")
    assert witness_events(text) == [("start", "web", "node1", 1795677924.569122253),
                                    ("stop", "web", "node1", 1795677925.5)]
    record = ("# pid=12 t=3779.294943\nlogfile=/x\naction=reboot\nnodename=node2\n\n"
              "# pid=13 t=3780.5\naction=off\nnodename=node3\n\n")
    assert fence_records(record) == [
        (3779.294943, {"logfile": "/x", "action": "reboot", "nodename": "node2"}),
        (3780.5, {"action": "off", "nodename": "node3"})]


def test_daemon_log_times() -> None:
    text = ("2026-11-26 07:17:25,287 rgmanager[1]: INFO service:web: started on node3\n"
            "2026-11-26 07:17:25,300 rgmanager[1]: INFO service:web: starting on node3\n"
            "not a log line service:web: started on node3\n")
    want = dt.datetime(2026, 11, 26, 7, 17, 25).timestamp() + 0.287
    assert daemon_times(text, "service:web: started on node3") == [pytest.approx(want)]


times = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@given(times, times, times, times)
def test_a_runs_parts_add_up_to_its_total(d: float, decision: float, fencing: float,
                                          recovery: float) -> None:
    total = d + decision + fencing + recovery
    sample = {"detected": d, "fence_start": d + decision, "fence_end": d + decision + fencing,
              "total": total, "started": None}
    p = parts(sample)
    assert p["total"] == total
    assert p["own part"] == pytest.approx(decision + recovery, abs=1e-9)
    assert p["decision"] == pytest.approx(decision, abs=1e-9)
    assert p["recovery"] == pytest.approx(recovery, abs=1e-9)


def test_parts_unobserved_stay_unknown() -> None:
    p = parts({"total": 1.2, "detected": None, "fence_start": None, "fence_end": None})
    assert p["own part"] is None and p["fencing"] is None and p["total"] == 1.2
