"""The failover benchmark's pure parts: statistics, tables, rendering, parsing.

No cluster here: the benchmark itself (``python -m benchmarks.failover``)
builds namespaces and runs Pacemaker; these check what it computes and writes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.failover import (
    PARTS,
    Sample,
    format_comparison,
    format_table,
    measure_rgmanager,
    ms,
    ratio,
    sample_from_logs,
    summarize,
)
from benchmarks.pacemaker_lab import (
    FenceCall,
    fence_calls,
    fence_wrapper,
    membership_times,
    parse_crm_mon,
    parse_locate,
    resources_xml,
    syslog_time,
)

# -------------------------------------------------------------- statistics

def test_parts_split_the_total() -> None:
    s = Sample(total=1.8, detected=1.1, fence_start=1.2, fence_end=1.45, started=1.75)
    p = s.parts()
    assert list(p) == list(PARTS)
    assert p["decision"] == pytest.approx(0.1)
    assert p["fencing"] == pytest.approx(0.25)
    assert p["recovery"] == pytest.approx(0.35)
    assert p["own part"] == pytest.approx(0.45)
    assert p["agent start"] == 1.75


def test_unobserved_parts_are_none() -> None:
    p = Sample(total=2.0, detected=1.0).parts()
    assert p["fencing"] is None and p["own part"] is None and p["recovery"] is None
    assert p["total"] == 2.0


@given(st.floats(0.5, 2.0), st.floats(0.0, 0.5), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_own_part_is_decision_plus_recovery(detect: float, decide: float, fence: float,
                                            recover: float) -> None:
    fs = detect + decide
    s = Sample(total=fs + fence + recover, detected=detect, fence_start=fs, fence_end=fs + fence)
    p = s.parts()
    own, decision, recovery, fencing = (p["own part"], p["decision"], p["recovery"],
                                        p["fencing"])
    assert own is not None and decision is not None and recovery is not None
    assert fencing is not None
    assert own == pytest.approx(decision + recovery)
    assert detect + fencing + own == pytest.approx(s.total)


@given(st.lists(st.one_of(st.none(), st.floats(0, 100)), max_size=20))
def test_summary_bounds(values: list[float | None]) -> None:
    s = summarize(values)
    seen = [v for v in values if v is not None]
    if not seen:
        assert s is None
        return
    assert s is not None and s.n == len(seen)
    assert s.low <= s.median <= s.high
    assert s.low == min(seen) and s.high == max(seen)


def test_summary_median_even_count() -> None:
    assert summarize([0.4, 0.1, 0.3, 0.2]) == summarize([0.1, 0.2, 0.3, 0.4])
    s = summarize([0.4, 0.1, 0.3, 0.2])
    assert s is not None and s.median == pytest.approx(0.25)


def test_ms_and_ratio_formatting() -> None:
    assert ms(1.2346) == "1235"
    assert ms(None) == "-"
    assert ratio(0.9, 1.8) == "0.50x"
    assert ratio(2.0, 1.0) == "2.00x"
    assert ratio(None, 1.0) == "-" and ratio(1.0, None) == "-" and ratio(1.0, 0.0) == "-"


def test_table_lists_every_part() -> None:
    samples = [Sample(total=t, detected=1.0, fence_start=1.1, fence_end=1.3)
               for t in (1.7, 1.8, 2.0)]
    text = format_table("Pacemaker 2.1, token 500, member", samples)
    lines = text.splitlines()
    assert lines[0] == "Pacemaker 2.1, token 500, member (3 runs)"
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {p.split()[0] for p in PARTS}
    assert rows["total"][1:] == ["1700", "1800", "2000", "3"]
    assert rows["agent"][-1] == "0"  # never observed: dashes, n=0


def test_comparison_gives_medians_and_ratio() -> None:
    ours = {(500, "member"): [Sample(total=1.2, detected=1.1, fence_start=1.11,
                                     fence_end=1.15)]}
    theirs = {(500, "member"): [Sample(total=2.4, detected=1.1, fence_start=1.2,
                                       fence_end=1.4)],
              (500, "dc"): [Sample(total=3.0)]}
    lines = format_comparison(ours, theirs).splitlines()
    member = next(line for line in lines if " member " in line).split()
    assert member[:5] == ["500", "member", "1200", "2400", "0.50x"]
    dc = next(line for line in lines if " dc " in line).split()
    assert dc[:5] == ["500", "dc", "-", "3000", "-"]
    assert lines.index(next(line for line in lines if " member " in line)) < lines.index(
        next(line for line in lines if " dc " in line))


def test_rgmanager_side_comes_from_failover_rgmanager(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's rgmanager-py side is failover_rgmanager's, as Samples
    (the lab itself needs root and corosync: not run here)."""
    import benchmarks.failover_rgmanager as ours

    calls: list[tuple[int, int, str]] = []

    def fake(runs: int, token: int, owner_kind: str) -> list[dict[str, float | None]]:
        calls.append((runs, token, owner_kind))
        return [{"total": 1.2, "detected": 1.0, "fence_start": 1.05, "fence_end": 1.1,
                 "started": 1.15}]

    monkeypatch.setattr(ours, "measure_rgmanager", fake)
    samples = measure_rgmanager(1, 500, "member")
    assert calls == [(1, 500, "member")]
    assert samples == [Sample(1.2, 1.0, 1.05, 1.1, 1.15)]


# -------------------------------------------------------------- rendering

def test_resources_xml_has_a_device_per_node_and_the_dummy() -> None:
    root = ET.fromstring(resources_xml({"node1": "ns1", "node2": "ns2", "node3": "ns3"}))
    assert root.tag == "resources"
    prims = root.findall("primitive")
    devices = [p for p in prims if p.get("class") == "stonith"]
    assert [d.get("type") for d in devices] == ["fence_netns"] * 3
    for d in devices:
        name = d.get("id", "").removeprefix("st-")
        attrs = {nv.get("name"): nv.get("value") for nv in d.iter("nvpair")}
        assert attrs == {"netns": f"ns{name[-1]}", "pcmk_host_list": name}
    dummy = [p for p in prims if p.get("class") == "ocf"]
    assert [(p.get("id"), p.get("provider"), p.get("type")) for p in dummy] == [
        ("d1", "pacemaker", "Dummy")]
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))  # the CIB refuses duplicate ids


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_fence_wrapper_runs_the_agent_and_logs_without_options(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.write_text("#!/bin/sh\ncat > \"$0.stdin\"\nexit 3\n")
    agent.chmod(0o755)
    log = tmp_path / "fence.log"
    wrapper = tmp_path / "fence_netns"
    wrapper.write_text(fence_wrapper(agent, log))
    wrapper.chmod(0o755)
    stdin = "action=off\nport=node2\npasswd=secret\n"
    r = subprocess.run([str(wrapper)], input=stdin, text=True, capture_output=True)
    assert r.returncode == 3
    assert (tmp_path / "agent.stdin").read_text() == stdin  # options reach the agent
    text = log.read_text()
    assert "secret" not in text
    [call] = fence_calls(text)
    assert (call.rc, call.action, call.target) == (3, "off", "node2")
    assert 0 <= call.end - call.start < 10


# ----------------------------------------------------------------- parsing

def test_syslog_time_keeps_milliseconds() -> None:
    t = syslog_time("Nov 26 07:00:39.287 notice  [TOTEM ] A new membership", 2026)
    assert t == pytest.approx(dt.datetime(2026, 11, 26, 7, 0, 39, 287000).timestamp())
    assert syslog_time("garbage", 2026) is None
    whole = syslog_time("Jan  2 03:04:05 x", 2026)
    assert whole == dt.datetime(2026, 1, 2, 3, 4, 5).timestamp()


def test_membership_times_only_new_memberships() -> None:
    text = "\n".join([
        "Nov 26 07:00:39.100 notice  [TOTEM ] Token has not been received in 375 ms",
        "Nov 26 07:00:39.287 notice  [TOTEM ] A new membership (1.d) was formed. "
        "Members left: 3",
        "Nov 26 07:00:39.287 notice  [QUORUM] Members[2]: 1 2",
        "Nov 26 07:00:45.001 notice  [TOTEM ] A new membership (1.e) was formed. "
        "Members joined: 3",
    ])
    times = membership_times(text, 2026)
    assert len(times) == 2 and times[1] - times[0] == pytest.approx(5.714)


def test_fence_calls_skip_bad_lines() -> None:
    text = "1.5 1.75 0 reboot node3\nnot a line\n2 3 1 monitor\n"
    assert fence_calls(text) == [FenceCall(1.5, 1.75, 0, "reboot", "node3"),
                                 FenceCall(2.0, 3.0, 1, "monitor", "")]


CRM_MON = """<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
  <summary>
    <current_dc present="true" version="2.1.5" name="node2" id="2" with_quorum="true"/>
  </summary>
  <nodes>
    <node name="node1" id="1" online="true"/>
    <node name="node2" id="2" online="true"/>
    <node name="node3" id="3" online="false"/>
  </nodes>
  <resources>
    <resource id="st-node1" resource_agent="stonith:fence_netns" role="Started">
      <node name="node2" id="2" cached="true"/>
    </resource>
    <resource id="d1" resource_agent="ocf:pacemaker:Dummy" role="Started">
      <node name="node1" id="1" cached="true"/>
    </resource>
  </resources>
</pacemaker-result>"""


def test_parse_crm_mon() -> None:
    s = parse_crm_mon(CRM_MON)
    assert (s.dc, s.quorate, s.owner) == ("node2", True, "node1")
    assert s.online == {"node1", "node2"}
    stopped = CRM_MON.replace('role="Started">\n      <node name="node1" id="1" cached="true"/>',
                              'role="Stopped">')
    assert parse_crm_mon(stopped).owner is None
    no_dc = CRM_MON.replace('present="true"', 'present="false"')
    assert parse_crm_mon(no_dc).dc is None


def test_parse_locate() -> None:
    assert parse_locate("resource d1 is running on: node3\n") == "node3"
    assert parse_locate("resource d1 is NOT running\n") is None


def test_sample_from_logs() -> None:
    t_kill = dt.datetime(2026, 11, 26, 7, 0, 38, 200000).timestamp()
    corosync = ("Nov 26 07:00:37.000 notice  [TOTEM ] A new membership (1.c) was formed. "
                "Members joined: 3\n"
                "Nov 26 07:00:39.287 notice  [TOTEM ] A new membership (1.d) was formed. "
                "Members left: 3\n")
    fences = "\n".join([
        f"{t_kill - 5} {t_kill - 4.9} 0 reboot node3",  # an older run
        f"{t_kill + 1.2} {t_kill + 1.3} 1 reboot node3",  # failed attempt
        f"{t_kill + 1.4} {t_kill + 1.5} 0 monitor ",
        f"{t_kill + 1.5} {t_kill + 1.7} 0 reboot node2",  # another node
        f"{t_kill + 1.6} {t_kill + 1.8} 0 off node3",
    ])
    s = sample_from_logs(t_kill, t_kill + 2.0, corosync, fences, "node3", started=t_kill + 1.9)
    assert s.total == pytest.approx(2.0)
    assert s.detected == pytest.approx(1.087)
    assert s.fence_start == pytest.approx(1.2) and s.fence_end == pytest.approx(1.8)
    assert s.started == pytest.approx(1.9)
    unfenced = sample_from_logs(t_kill, t_kill + 2.0, "", fences, "node1")
    assert unfenced.detected is None and unfenced.fence_start is None
    assert unfenced.fence_end is None and unfenced.started is None
