"""The pure parts of benchmarks.bench_vs_pacemaker: rendering, parsing, arithmetic.

Nothing here starts Pacemaker, corosync or the daemon (the benchmark itself
does, as root); these checks keep the figures it prints honest.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_vs_pacemaker import (
    FAN_EVENT,
    HEARTBEAT,
    ProcStat,
    Run,
    by_command,
    cib_resources,
    corosync_conf,
    cpu_ticks,
    due_monitors,
    fanotify_events,
    gaps_within,
    ours_dummy_conf,
    ours_script_conf,
    parse_crm_mon,
    parse_n,
    parse_stat,
    ratio,
    runs_from_json,
    spread,
    table,
)
from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import parse_metadata
from rgmanager.loader import Loaded, load

from .seed_rules import SEED, seed_rules


def test_parse_n() -> None:
    assert parse_n("100,1000") == [100, 1000]
    assert parse_n("5") == [5]
    for bad in ("", "0", "10,-1", "x"):
        with pytest.raises(ValueError):
            parse_n(bad)


def test_corosync_conf_is_one_node_on_loopback(tmp_path: Path) -> None:
    text = corosync_conf(tmp_path / "state", tmp_path / "c.log")
    assert "ring0_addr: 127.0.0.1" in text
    assert text.count("nodeid:") == 1
    assert f"state_dir: {tmp_path / 'state'}" in text
    assert "corosync_votequorum" in text


@pytest.mark.parametrize("role", ["Started", "Stopped"])
def test_cib_resources_one_batch_of_dummies(role: str) -> None:
    root = ET.fromstring(cib_resources(3, 10, role))
    prims = root.findall("primitive")
    assert [p.get("id") for p in prims] == ["d0", "d1", "d2"]
    for p in prims:
        assert (p.get("class"), p.get("provider"), p.get("type")) == ("ocf", "heartbeat", "Dummy")
        ops = p.findall("operations/op")
        assert [(o.get("name"), o.get("interval")) for o in ops] == [("monitor", "10s")]
        roles = [nv.get("value") for nv in p.iterfind("meta_attributes/nvpair")
                 if nv.get("name") == "target-role"]
        assert roles == [role]
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))  # the CIB rejects duplicate ids
    with pytest.raises(ValueError):
        cib_resources(1, 10, "Master")


def _status_intervals(loaded: Loaded, kind: str) -> list[float]:
    return [a.interval for svc in loaded.forest.services for child in svc.children
            if child.type == kind for a in child.status_actions()]


def test_script_config_loads_with_the_interval(tmp_path: Path) -> None:
    conf = tmp_path / "script.conf"
    conf.write_text(ours_script_conf(4, 10, tmp_path / "init.d"))
    loaded = load(conf, seed_rules())
    assert [s.name for s in loaded.forest.services] == [f"service:svc{i}" for i in range(4)]
    intervals = _status_intervals(loaded, "script")
    assert intervals and set(intervals) == {10}
    assert '<action name="status" depth="*" interval="7.5"/>' in ours_script_conf(
        1, 7.5, tmp_path)


@pytest.mark.skipif(not (HEARTBEAT / "Dummy").is_file(),
                    reason="heartbeat Dummy not installed (Debian package resource-agents)")
def test_dummy_config_loads_with_the_interval(tmp_path: Path) -> None:
    """Our Dummy services pass the real loader with Dummy's own meta-data; each
    is named dN and monitored at the benchmark's interval, not Dummy's default."""
    meta = subprocess.run([str(HEARTBEAT / "Dummy"), "meta-data"], capture_output=True,
                          text=True, env={"OCF_ROOT": "/usr/lib/ocf"}, check=True).stdout
    rules = RuleSet.from_rules([*SEED, parse_metadata(meta, str(HEARTBEAT / "Dummy"),
                                                      "/usr/lib/ocf")])
    conf = tmp_path / "dummy.conf"
    conf.write_text(ours_dummy_conf(3, 7))
    loaded = load(conf, rules)
    names = [c.attr("name") for s in loaded.forest.services for c in s.children]
    assert names == ["d0", "d1", "d2"]
    intervals = _status_intervals(loaded, "Dummy")
    assert intervals and set(intervals) == {7}


CRM_MON = """<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
  <summary><current_dc present="true" version="2.1.5" name="node1" id="1"
     with_quorum="true" mixed_version="false"/></summary>
  <nodes><node name="node1" id="1" online="true"/></nodes>
  <resources>
    <resource id="d0" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true"
       failed="false"><node name="node1" id="1" cached="true"/></resource>
    <resource id="d1" resource_agent="ocf:heartbeat:Dummy" role="Stopping" active="true"
       failed="false"/>
    <resource id="d2" resource_agent="ocf:heartbeat:Dummy" role="Stopped" active="false"
       failed="true"/>
  </resources>
  <status code="0" message="OK"/>
</pacemaker-result>"""


def test_parse_crm_mon() -> None:
    c = parse_crm_mon(CRM_MON)
    assert (c.dc, c.quorate, c.started, c.active, c.failed, c.total) == (
        True, True, 1, 2, 1, 3)
    none = parse_crm_mon('<pacemaker-result><summary><current_dc present="false"/>'
                         "</summary></pacemaker-result>")
    assert (none.dc, none.quorate, none.total) == (False, False, 0)


def test_parse_stat_odd_command_names() -> None:
    fields = " ".join(["S", "1"] + ["0"] * 9 + ["7", "3", "100", "20"] + ["0"] * 30)
    assert parse_stat(f"42 (a) b (c)) {fields}") == ProcStat("a) b (c)", 10, 120)
    assert parse_stat(f"42 (pacemaker-execd) {fields}").comm == "pacemaker-execd"


def test_cpu_counts_reaped_children_and_breakdown() -> None:
    """A child that lived and died inside the window shows up as its parent's
    reaped time; one alive at the start and gone at the end counts only its
    part in the window."""
    before = {1: ProcStat("execd", 100, 50), 2: ProcStat("Dummy", 4, 0)}
    after = {1: ProcStat("execd", 110, 50 + 6 + 9)}  # pid 2 (6 ticks in all) reaped + new 9
    assert cpu_ticks(after) - cpu_ticks(before) == 10 + 2 + 9
    assert by_command(before, after) == {"execd": 25}
    # a pid reused by another command is not compared with the old one
    assert by_command({5: ProcStat("a", 1, 0)}, {5: ProcStat("b", 9, 0)}) == {}


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                          st.integers(0, 10**6), st.integers(0, 10**6)), max_size=20))
def test_window_delta_of_long_lived_processes(rows: list[tuple[int, int, int, int]]) -> None:
    """For processes alive at both ends the total is the sum of the breakdown."""
    before = {i: ProcStat(f"p{i}", a, b) for i, (a, b, _, _) in enumerate(rows)}
    after = {i: ProcStat(f"p{i}", a + c, b + d) for i, (a, b, c, d) in enumerate(rows)}
    assert cpu_ticks(after) - cpu_ticks(before) == sum(by_command(before, after).values())


def test_gaps_within() -> None:
    times = {"d0": [1.0, 11.0, 21.0, 31.0], "d1": [5.0, 16.0], "d2": []}
    checks, gaps = gaps_within(times, 10.0, 30.0)
    assert checks == 3
    assert sorted(gaps) == [10.0, 10.0, 11.0]


def test_run_figures_and_table() -> None:
    assert due_monitors(100, 60, 10) == 600
    p = [Run("pacemaker", 100, 2.0, 60.0, 3.0, 1.0, 10.0) for _ in range(3)]
    o = [Run("ours-dummy", 100, 1.0, 60.0, c, 0.5, 10.0) for c in (1.2, 1.5, 0.9)]
    s = [Run("ours-script", 100, 1.0, 60.0, 0.6, 0.5, 10.0, checks=300, gap_max=20.0)]
    assert p[0].cpu_pct == pytest.approx(5.0)
    assert p[0].ms_per_monitor == pytest.approx(5.0)
    assert p[0].checks_share is None and p[0].ms_per_check is None
    assert s[0].checks_share == pytest.approx(0.5)
    assert s[0].ms_per_check == pytest.approx(2.0)  # twice the per-due figure
    assert s[0].ms_per_monitor == pytest.approx(1.0)
    assert ratio([r.cpu_pct for r in o], [r.cpu_pct for r in p]) == "0.40x"
    assert ratio([], [1.0]) == "-"
    assert spread([3.0, 1.0, 2.0]) == (1.0, 2.0, 3.0)
    text = table(s + o + p)
    rows = [line for line in text.splitlines() if line.startswith("| 100 |")]
    assert [r.split(" | ")[1] for r in rows] == ["pacemaker", "ours-dummy", "ours-script"]
    assert rows[0].startswith("| 100 | pacemaker | 5.0 (5.0-5.0) | 5.00 (5.00-5.00) | - | - | 1 |")
    assert "| 100 | ours-dummy | 2.0 (1.5-2.5) |" in rows[1]
    assert "| 0.40x |" in rows[1] and rows[1].endswith("| 3 |")
    assert "| 1.00 | 0.50 | 2.00 | 0.20x |" in rows[2]


def test_table_from_saved_json() -> None:
    runs = [Run("pacemaker", 10, 2.0, 60.0, 3.0, 1.0, 10.0, breakdown={"corosync": 0.5}),
            Run("ours-script", 10, 1.0, 60.0, 0.6, 0.5, 10.0, checks=30, gap_max=10.0)]
    saved = json.dumps([{**asdict(r), "cpu_pct": r.cpu_pct} for r in runs])
    assert runs_from_json(saved) == runs


def test_fanotify_events() -> None:
    one = FAN_EVENT.pack(FAN_EVENT.size, 3, 0, FAN_EVENT.size, 0x20, 7, 1234)
    other = FAN_EVENT.pack(FAN_EVENT.size, 3, 0, FAN_EVENT.size, 0x20, -1, 99)
    assert fanotify_events(one + other) == [(7, 1234), (-1, 99)]
    assert fanotify_events(one[:10]) == []  # a short read holds no event
