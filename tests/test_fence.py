"""Fencing: coordinator choice, agent calls from cluster.conf, rounds, the Fencer.

Agents are real processes (tests/fence_agents/) run through the executor;
what an agent received is read back from fence_record's log file.  Nothing
waits a fixed time: tests wait for a condition with a deadline.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgmanager.agents.discovery import RuleSet
from rgmanager.config import (
    ClusterConfig,
    ClusterNode,
    FenceDevice,
    FenceDeviceRef,
    FenceMethod,
    load_config,
)
from rgmanager.config.model import frozen_map
from rgmanager.executor import ProgramResult
from rgmanager.fence import (
    Fencer,
    FenceStart,
    coordinator,
    fence_plan,
    is_secret,
    redacted,
    resolve_agent,
    run_call,
)
from rgmanager.fence.calls import device_call

from .cluster_lab import wait_for

AGENTS = Path(__file__).resolve().parent / "fence_agents"
RECORD = str(AGENTS / "fence_record")
NETNS = str(AGENTS / "fence_netns")
SECRET = "s3cr3t-Pa55"


# ------------------------------------------------------------------ helpers

def conf_text(nodes: str, devices: str) -> str:
    return f"""<?xml version="1.0"?>
<cluster name="fencetest" config_version="1">
  <clusternodes>
{nodes}
  </clusternodes>
  <fencedevices>
{devices}
  </fencedevices>
  <rm/>
</cluster>
"""


@pytest.fixture
def load(tmp_path: Path, rules: RuleSet) -> Callable[[str, str], ClusterConfig]:
    """load(nodes_xml, devices_xml) -> the parsed model of a real cluster.conf."""
    count = [0]

    def _load(nodes: str, devices: str) -> ClusterConfig:
        count[0] += 1
        path = tmp_path / f"cluster{count[0]}.conf"
        path.write_text(conf_text(nodes, devices))
        config, _ = load_config(path, rules)
        return config

    return _load


def records(path: Path) -> list[dict[str, object]]:
    """fence_record's log: one entry per call, with its lines and start time."""
    if not path.exists():
        return []
    calls: list[dict[str, object]] = []
    for block in path.read_text().split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln]
        if not lines or not lines[0].startswith("# pid="):
            continue
        header = dict(word.split("=", 1) for word in lines[0][2:].split())
        body = lines[1:]
        calls.append({"t": float(header["t"]), "lines": body,
                      "args": dict(ln.split("=", 1) for ln in body)})
    return calls


class Fenced:
    """on_fenced recorder."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, node: str, method: str, device: str) -> None:
        with self.lock:
            self.calls.append((node, method, device))


@pytest.fixture
def fencers() -> Iterator[list[Fencer]]:
    made: list[Fencer] = []
    yield made
    for f in made:
        f.close(timeout=15)


def make_fencer(fencers: list[Fencer], config: ClusterConfig, on_fenced: Fenced, *,
                round_pause: float = 0.05, warn_interval: float = 60.0) -> Fencer:
    f = Fencer(config, on_fenced, round_pause=round_pause, warn_interval=warn_interval)
    fencers.append(f)
    return f


# -------------------------------------------------------------- coordinator

def test_coordinator_is_lowest_node_id() -> None:
    assert coordinator([("n3", 3), ("n2", 2), ("n7", 7)]) == "n2"
    assert coordinator([ClusterNode("b", 10), ClusterNode("a", 11)]) == "b"
    assert coordinator([ClusterNode("x", 5), ("y", 4)]) == "y"
    with pytest.raises(ValueError):
        coordinator([])


@given(st.dictionaries(st.integers(1, 10_000), st.text(min_size=1, max_size=8),
                       min_size=1, max_size=16), st.randoms())
def test_coordinator_depends_only_on_membership(members: dict[int, str], rnd) -> None:
    """Every node, seeing the members in whatever order, names the same coordinator."""
    listed = [(name, nodeid) for nodeid, name in members.items()]
    rnd.shuffle(listed)
    assert coordinator(listed) == members[min(members)]


# ------------------------------------------------------- calls from the config

def test_plan_merges_device_and_line_attributes(load) -> None:
    config = load(
        '<clusternode name="node1" nodeid="1"><fence>'
        '<method name="primary"><device name="pdu" port="7" login="line-user"/></method>'
        '<method name="backup"><device name="ipmi" action="off"/></method>'
        '</fence></clusternode>',
        '<fencedevice name="pdu" agent="fence_apc" ipaddr="10.0.0.9" login="dev-user" '
        f'passwd="{SECRET}"/>'
        '<fencedevice name="ipmi" agent="fence_ipmilan" ipaddr="10.0.0.10" action="reboot"/>')
    plans = fence_plan(config, "node1")
    assert [p.name for p in plans] == ["primary", "backup"]
    pdu = plans[0].calls[0]
    assert pdu.agent == "fence_apc"
    # the line wins; name/agent are cluster.conf's, not agent options; nodename is last
    assert list(pdu.args.items()) == [
        ("ipaddr", "10.0.0.9"), ("login", "line-user"), ("passwd", SECRET), ("port", "7"),
        ("action", "reboot"), ("nodename", "node1")]
    assert pdu.stdin() == (f"ipaddr=10.0.0.9\nlogin=line-user\npasswd={SECRET}\nport=7\n"
                           "action=reboot\nnodename=node1\n").encode()
    assert plans[1].calls[0].args["action"] == "off"
    assert SECRET not in repr(pdu)
    assert fence_plan(config, "nobody") == ()


def test_delay_is_ours_and_only_before_off_or_reboot(load) -> None:
    config = load(
        '<clusternode name="node1" nodeid="1"><fence><method name="1">'
        '<device name="d" delay="2"/><device name="d" action="on"/>'
        '<device name="d" delay="soon"/></method></fence></clusternode>',
        f'<fencedevice name="d" agent="{RECORD}" delay="1.5"/>')
    first, on, bad = fence_plan(config, "node1")[0].calls
    assert first.delay == 2.0 and "delay" not in first.args  # never slept twice
    assert on.delay == 0.0 and on.action == "on"
    assert bad.delay == 0.0  # a bad value is logged and ignored, the device still used


def test_nodename_is_always_the_victim() -> None:
    config = ClusterConfig("x", "c", 1, fencedevices=(
        FenceDevice("d", RECORD, frozen_map({"nodename": "other"})),))
    call = device_call(config, "node2", "1", "d", frozen_map({"nodename": "other2"}))
    assert list(call.args.items())[-1] == ("nodename", "node2")


@given(st.dictionaries(st.sampled_from(["ipaddr", "login", "port", "name", "agent", "action",
                                        "passwd", "x"]), st.text("abc", max_size=3)),
       st.dictionaries(st.sampled_from(["ipaddr", "login", "port", "name", "action", "y"]),
                       st.text("def", max_size=3)))
def test_merge_precedence(dev: dict[str, str], line: dict[str, str]) -> None:
    config = ClusterConfig("x", "c", 1, fencedevices=(FenceDevice("d", "fence_x",
                                                                  frozen_map(dev)),))
    call = device_call(config, "n1", "1", "d", frozen_map(line))
    expected = {k: v for k, v in {**dev, **line}.items() if k not in ("name", "agent")}
    expected["action"] = expected.get("action") or "reboot"
    expected["nodename"] = "n1"
    assert dict(call.args) == expected
    assert list(call.args)[-2:] == ["action", "nodename"]


def test_secrets_are_recognised() -> None:
    for key in ("passwd", "password", "passwd_script", "snmp_priv_passwd", "secret_key",
                "api_key", "token"):
        assert is_secret(key), key
    assert not is_secret("login") and not is_secret("ipaddr")
    assert redacted({"passwd": SECRET, "login": "a"}) == {"passwd": "********", "login": "a"}


# ------------------------------------------------------------ one agent call

def test_agent_gets_exactly_the_lines(tmp_path: Path) -> None:
    log = tmp_path / "rec.log"
    config = ClusterConfig("x", "c", 1, fencedevices=(FenceDevice("d", RECORD, frozen_map(
        {"logfile": str(log), "passwd": SECRET})),))
    call = device_call(config, "node3", "1", "d", frozen_map({"port": "3"}))
    outcome = run_call(call)
    assert outcome.ok, outcome.reason
    (got,) = records(log)
    assert got["lines"] == [f"logfile={log}", f"passwd={SECRET}", "port=3", "action=reboot",
                            "nodename=node3"]


def test_agent_lookup(tmp_path: Path) -> None:
    assert resolve_agent(RECORD) == RECORD
    assert resolve_agent("fence_record", search_path=str(AGENTS)) == RECORD
    with pytest.raises(LookupError, match="not found on PATH or in /usr/sbin"):
        resolve_agent("fence_no_such_agent", search_path=str(tmp_path))
    with pytest.raises(LookupError, match="relative path"):
        resolve_agent("fence_agents/fence_record")
    plain = tmp_path / "fence_plain"
    plain.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(LookupError, match="not executable"):
        resolve_agent(str(plain))


def test_unknown_agent_is_a_failed_device_with_a_clear_message() -> None:
    config = ClusterConfig("x", "c", 1, fencedevices=(FenceDevice("d", "fence_no_such_agent"),))
    outcome = run_call(device_call(config, "n1", "1", "d", frozen_map()),
                       search_path="/nonexistent")
    assert not outcome.ok
    assert "agent fence_no_such_agent not found" in outcome.reason
    missing = device_call(config, "n1", "1", "gone", frozen_map())
    assert "no <fencedevice name=\"gone\">" in run_call(missing).reason


def test_timeout_kills_the_agents_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    config = ClusterConfig("x", "c", 1, fencedevices=(FenceDevice("d", RECORD, frozen_map(
        {"sleep": "60", "pidfile": str(pidfile)})),))
    start = time.monotonic()
    outcome = run_call(device_call(config, "n1", "1", "d", frozen_map()), timeout=1.0)
    assert not outcome.ok and "timed out after 1 s" in outcome.reason
    assert time.monotonic() - start < 30
    agent_pid, child_pid = (int(p) for p in pidfile.read_text().split())

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
        except OSError:
            return True

    wait_for(lambda: gone(agent_pid) and gone(child_pid), 10, "agent and its child to die")


def test_no_secret_in_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = tmp_path / "rec.log"
    config = ClusterConfig("x", "c", 1, fencedevices=(FenceDevice("d", RECORD, frozen_map(
        {"logfile": str(log), "passwd": SECRET, "exit_code": "1", "echo_input": "1"})),))
    call = device_call(config, "n1", "1", "d", frozen_map())
    outcome = run_call(call)
    assert not outcome.ok and "exit 1" in outcome.reason
    assert "passwd=********" in outcome.reason  # the agent's echo, masked

    def boom(argv, *, stdin=None, env=None, timeout):  # noqa: ANN001
        raise RuntimeError(f"runner broke on {stdin!r}")

    broken = run_call(call, runner=boom)
    assert not broken.ok and "runner broke" in broken.reason
    for text in (outcome.reason, broken.reason, caplog.text, repr(call)):
        assert SECRET not in text
    assert "passwd=********" in caplog.text  # what was sent is logged, redacted
    assert SECRET in log.read_text()  # ... and the agent did get the real one


# ------------------------------------------------------------------ rounds

def two_method_conf(load, log: Path, first_rc: int, second_rc: int = 0,
                    third_rc: int = 0) -> ClusterConfig:
    return load(
        '<clusternode name="node1" nodeid="1"/>'
        '<clusternode name="node2" nodeid="2"><fence>'
        f'<method name="power"><device name="rec" port="a" exit_code="{first_rc}"/>'
        f'<device name="rec" port="b" exit_code="{second_rc}"/></method>'
        f'<method name="fabric"><device name="rec" port="c" exit_code="{third_rc}"/></method>'
        '</fence></clusternode>',
        f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>')


def ports(log: Path) -> list[str]:
    return [str(c["args"]["port"]) for c in records(log)]  # type: ignore[index]


def test_methods_in_order_all_devices_must_succeed(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    fencer = make_fencer(fencers, two_method_conf(load, log, 0, 1, 0), fenced)
    assert fencer.fence("node2") is FenceStart.STARTED
    wait_for(lambda: fenced.calls, 20, "node2 fenced")
    # power: a ok, b fails -> the method fails; fabric: c ok
    assert ports(log) == ["a", "b", "c"]
    assert fenced.calls == [("node2", "fabric", "rec")]
    assert fencer.fencing() == frozenset()


def test_first_method_that_succeeds_ends_fencing(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    fencer = make_fencer(fencers, two_method_conf(load, log, 0, 0, 0), fenced)
    fencer.fence("node2")
    wait_for(lambda: fenced.calls, 20, "node2 fenced")
    assert ports(log) == ["a", "b"]
    assert fenced.calls == [("node2", "power", "rec, rec")]


def test_rounds_until_success_and_reload(load, tmp_path: Path, fencers,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log = tmp_path / "rec.log"
    fenced = Fenced()
    fencer = make_fencer(fencers, two_method_conf(load, log, 1, 0, 1), fenced, round_pause=0.2)
    fencer.fence("node2")
    wait_for(lambda: len(records(log)) >= 4, 30, "two failed rounds")
    assert not fenced.calls
    assert ports(log)[:4] == ["a", "c", "a", "c"]
    assert "round 1 failed (2 methods)" in caplog.text
    fencer.set_config(two_method_conf(load, log, 1, 0, 0))  # the administrator fixes fabric
    wait_for(lambda: fenced.calls, 30, "node2 fenced after the reload")
    assert fenced.calls == [("node2", "fabric", "rec")]


def test_cancel_stops_the_rounds(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    fencer = make_fencer(fencers, two_method_conf(load, log, 1, 0, 1), fenced)
    fencer.fence("node2")
    assert fencer.fence("node2") is FenceStart.ALREADY
    wait_for(lambda: len(records(log)) >= 2, 30, "one failed round")
    assert fencer.cancel("node2")
    assert not fencer.cancel("node2")
    assert fencer.fencing() == frozenset()
    fencer.close(timeout=15)
    settled = len(records(log))
    fencer.set_config(two_method_conf(load, log, 0, 0, 0))
    assert len(records(log)) == settled and not fenced.calls


def test_start_over_waits_for_the_cancelled_agent(load, tmp_path: Path, fencers) -> None:
    """Start again from scratch: never two agents for one node at once."""
    log = tmp_path / "rec.log"
    fenced = Fenced()
    slow = load('<clusternode name="node2" nodeid="2"><fence><method name="1">'
                '<device name="rec" sleep="1.5" exit_code="1"/></method></fence></clusternode>',
                f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>')
    fencer = make_fencer(fencers, slow, fenced)
    fencer.fence("node2")
    wait_for(lambda: records(log), 20, "the slow agent to start")
    fencer.cancel("node2")
    fencer.set_config(load('<clusternode name="node2" nodeid="2"><fence><method name="1">'
                           '<device name="rec"/></method></fence></clusternode>',
                           f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>'))
    assert fencer.fence("node2") is FenceStart.STARTED
    wait_for(lambda: fenced.calls, 20, "node2 fenced by the new attempt")
    calls = records(log)
    old, new = calls[0], calls[-1]
    assert "exit_code" not in new["args"]  # type: ignore[operator]
    assert float(new["t"]) >= float(old["t"]) + 1.5  # type: ignore[arg-type]
    assert fenced.calls == [("node2", "1", "rec")]


def test_delay_is_honoured(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    config = load('<clusternode name="node2" nodeid="2"><fence><method name="1">'
                  '<device name="rec" delay="1"/></method></fence></clusternode>',
                  f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>')
    fencer = make_fencer(fencers, config, fenced)
    start = time.monotonic()
    fencer.fence("node2")
    wait_for(lambda: fenced.calls, 20, "node2 fenced")
    (call,) = records(log)
    assert float(call["t"]) - start >= 1.0  # type: ignore[arg-type]
    assert "delay" not in call["args"]  # type: ignore[operator]


def test_cancel_during_the_delay_runs_no_agent(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    config = load('<clusternode name="node2" nodeid="2"><fence><method name="1">'
                  '<device name="rec" delay="600"/></method></fence></clusternode>',
                  f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>')
    fencer = make_fencer(fencers, config, fenced)
    fencer.fence("node2")
    fencer.cancel("node2")
    start = time.monotonic()
    fencer.close(timeout=15)
    assert time.monotonic() - start < 15
    assert records(log) == [] and not fenced.calls


def test_no_method_warns_once_per_interval_until_cancelled(
        load, tmp_path: Path, fencers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rgmanager.fence")
    fenced = Fenced()
    config = load('<clusternode name="node1" nodeid="1"/><clusternode name="node2" nodeid="2"/>',
                  "")
    fencer = make_fencer(fencers, config, fenced, warn_interval=0.2)
    assert fencer.fence("node2") is FenceStart.CANNOT_FENCE
    assert fencer.fence("node9") is FenceStart.CANNOT_FENCE

    def warnings(node: str) -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and f"cannot fence {node}:" in r.getMessage()]

    wait_for(lambda: len(warnings("node2")) >= 2, 20, "repeated warnings")
    assert "no <fence> method" in warnings("node2")[0]
    assert "clusvcadm --fence-ack node2" in warnings("node2")[0]
    wait_for(lambda: warnings("node9"), 20, "a warning for an unknown node")
    assert "not a <clusternode>" in warnings("node9")[0]
    fencer.cancel_all()
    fencer.close(timeout=15)
    count = len(warnings("node2"))
    assert fencer.fencing() == frozenset() and not fenced.calls
    assert len(warnings("node2")) == count


def test_a_method_added_by_reload_is_used(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    fenced = Fenced()
    bare = load('<clusternode name="node2" nodeid="2"/>', "")
    fencer = make_fencer(fencers, bare, fenced, warn_interval=600)
    assert fencer.fence("node2") is FenceStart.CANNOT_FENCE
    fencer.set_config(load('<clusternode name="node2" nodeid="2"><fence><method name="m">'
                           '<device name="rec"/></method></fence></clusternode>',
                           f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>'))
    wait_for(lambda: fenced.calls, 20, "node2 fenced after the reload")
    assert fenced.calls == [("node2", "m", "rec")]


def test_on_fenced_failure_does_not_kill_the_fencer(load, tmp_path: Path, fencers) -> None:
    log = tmp_path / "rec.log"
    calls: list[str] = []

    def bad(node: str, method: str, device: str) -> None:
        calls.append(node)
        raise RuntimeError("manager trouble")

    config = load('<clusternode name="node2" nodeid="2"><fence><method name="m">'
                  '<device name="rec"/></method></fence></clusternode>'
                  '<clusternode name="node3" nodeid="3"><fence><method name="m">'
                  '<device name="rec"/></method></fence></clusternode>',
                  f'<fencedevice name="rec" agent="{RECORD}" logfile="{log}"/>')
    fencer = Fencer(config, bad, round_pause=0.05)
    fencers.append(fencer)
    fencer.fence("node2")
    wait_for(lambda: calls, 20, "node2 reported")
    fencer.fence("node3")
    wait_for(lambda: len(calls) == 2, 20, "node3 reported")


def test_injected_runner(load) -> None:
    """The runner is injectable (the manager's tests can fence without processes)."""
    seen: list[bytes] = []

    def runner(argv, *, stdin=None, env=None, timeout):  # noqa: ANN001
        seen.append(stdin)
        return ProgramResult(0, "", "", 0.01, False)

    config = ClusterConfig("x", "c", 1, nodes=(ClusterNode("n2", 2, fence=(FenceMethod(
        "m", (FenceDeviceRef("d", frozen_map({"port": "2"})),)),)),),
        fencedevices=(FenceDevice("d", RECORD),))
    fenced = Fenced()
    fencer = Fencer(config, fenced, runner=runner)
    try:
        fencer.fence("n2")
        wait_for(lambda: fenced.calls, 10, "n2 fenced")
    finally:
        fencer.close(timeout=5)
    assert seen == [b"port=2\naction=reboot\nnodename=n2\n"]


# ------------------------------------------------------ real agents: Debian, lab

FENCE_DUMMY = "/usr/sbin/fence_dummy"


@pytest.mark.skipif(not os.access(FENCE_DUMMY, os.X_OK),
                    reason="Debian's fence-agents is not installed (no /usr/sbin/fence_dummy)")
def test_fence_dummy_from_fence_agents(load, tmp_path: Path, fencers) -> None:
    """fence-agents' library takes our stdin: nodename is accepted, type=fail fails."""
    status = tmp_path / "status"
    status.write_text("on")
    fenced = Fenced()
    config = load('<clusternode name="node2" nodeid="2"><fence>'
                  '<method name="broken"><device name="dummyfail"/></method>'
                  '<method name="dummy"><device name="dummy" action="off"/></method>'
                  '</fence></clusternode>',
                  f'<fencedevice name="dummy" agent="fence_dummy" type="file" '
                  f'status_file="{status}"/>'
                  '<fencedevice name="dummyfail" agent="fence_dummy" type="fail" port="x" '
                  'power_timeout="1"/>')
    fencer = make_fencer(fencers, config, fenced)
    fencer.fence("node2")
    wait_for(lambda: fenced.calls, 60, "node2 fenced by fence_dummy")
    assert fenced.calls == [("node2", "dummy", "dummy")]
    assert status.read_text() == "off"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "ip not found"
    return None


@pytest.mark.root
@pytest.mark.skipif(_netns_unavailable() is not None, reason=str(_netns_unavailable()))
def test_fence_netns_switches_a_namespace_node_off(load, tmp_path: Path, fencers) -> None:
    ns = f"rgmfence{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    procs = []
    try:
        for _ in range(3):
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"]))

        def status() -> int:
            return subprocess.run([NETNS], input=f"netns={ns}\naction=status\n", text=True,
                                  capture_output=True).returncode

        wait_for(lambda: status() == 0, 10, "the namespace node to run")
        fenced = Fenced()
        config = load('<clusternode name="node2" nodeid="2"><fence><method name="switch">'
                      f'<device name="lab" port="{ns}"/></method></fence></clusternode>',
                      f'<fencedevice name="lab" agent="{NETNS}"/>')
        fencer = make_fencer(fencers, config, fenced)
        fencer.fence("node2")
        wait_for(lambda: fenced.calls, 30, "node2 switched off")
        for p in procs:
            assert p.wait(timeout=10) == -9
        assert status() == 2
        missing = subprocess.run([NETNS], input="netns=rgm-no-such-ns\naction=off\n",
                                 text=True, capture_output=True)
        assert missing.returncode == 1 and "no network namespace" in missing.stderr
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _agent(path: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path], input=text, text=True, capture_output=True, timeout=30)


def test_test_agents_answer_the_standard_actions(tmp_path: Path) -> None:
    for agent in (RECORD, NETNS):
        meta = subprocess.run([agent, "-o", "metadata"], text=True, capture_output=True,
                              timeout=30)
        assert meta.returncode == 0 and "<resource-agent name=" in meta.stdout
        assert _agent(agent, "action=dance\npiddir=/nonexistent\n").returncode == 1
    for action in ("on", "off", "reboot", "status", "monitor", "list"):
        assert _agent(RECORD, f"action={action}\n").returncode == 0, action
        assert _agent(RECORD, f"action={action}\nexit_code=2\n").returncode == 2, action


def test_fence_netns_by_pid_files(tmp_path: Path) -> None:
    """The lab's switch also works from a directory of pid files (no namespace needed)."""
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(2)]
    try:
        for i, p in enumerate(procs):
            (tmp_path / f"p{i}.pid").write_text(f"{p.pid}\n")
        piddir = f"piddir={tmp_path}\n"
        assert _agent(NETNS, piddir + "action=status\n").returncode == 0
        assert _agent(NETNS, piddir + "action=monitor\n").returncode == 0
        assert _agent(NETNS, piddir + "action=off\n").returncode == 0
        assert [p.wait(timeout=10) for p in procs] == [-9, -9]
        assert _agent(NETNS, piddir + "action=status\n").returncode == 2
        assert _agent(NETNS, piddir + "action=on\n").returncode == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()
