"""The managers fence a lost owner before its services run elsewhere (sim backend).

Three real managers on the in-process ``sim`` cluster, real resource agents,
and fencing through the real Fencer and executor running the recording test
agent (tests/fence_agents/fence_record, a real process). ``power=True``
attaches the sim's mock power switch: a successful fence switches the victim
off (kills its manager as SIGKILL would). What each test shows is in its
docstring; the clock is never faked and nothing sleeps a fixed time.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import pytest

from rgmanager import codes
from rgmanager.executor import ActionRequest, ActionResult, ProgramResult, run_action, run_program
from rgmanager.fence import Fencer
from rgmanager.loader import load
from rgmanager.planner import Reply

from .manager_helpers import Fencing, cluster_conf, fence_calls, wait_for
from .test_manager_sim import DOMAIN, RULES, Cluster3, Make, _in_thread, make, svc

__all__ = ["make"]  # the fixture, imported for pytest

# node2 carries 3 of 5 votes, so it stays quorate alone (the coordinator's death).
NODE2_HEAVY = {"node1": 1, "node2": 3, "node3": 1}


class Starts:
    """A resource runner that notes when each start ran (CLOCK_MONOTONIC, as
    fence_record's timestamps), then runs the real agent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[float, str, str]] = []  # (t, HA_RSCTMP's node, resource)

    def __call__(self, req: ActionRequest) -> ActionResult:
        if req.action == "start":
            node = Path(req.extra_env.get("HA_RSCTMP", "?")).name
            with self.lock:
                self.seen.append((time.monotonic(), node, req.params.get("name", "")))
        return run_action(req)

    def first(self, node: str, name: str, since: float) -> float:
        """When ``name`` first started on ``node`` after ``since``."""
        with self.lock:
            return next(t for t, n, r in self.seen if n == node and r == name and t > since)


def web_in_domain(c_make: Make) -> str:
    """web prefers node3, then node2 (ordered, fails back)."""
    return DOMAIN.format(restricted=0, nofailback=0) + svc("web", c_make.lsb, 'domain="d"')


def gated(gate: threading.Event) -> Callable[..., ProgramResult]:
    """A fence runner that waits for ``gate`` before running the agent (a slow switch)."""
    def run(argv: Sequence[str], *, stdin: bytes | None = None,
            env: Mapping[str, str] | None = None, timeout: float) -> ProgramResult:
        gate.wait(60)
        return run_program(argv, stdin=stdin, env=env, timeout=timeout)
    return run


def settle_until(c: Cluster3, pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Keep delivering until ``pred`` holds (fences end on threads of their own)."""
    def step() -> bool:
        c.settle()
        return pred()
    return wait_for(step, timeout, 0.01)


def test_owner_killed_is_fenced_once_then_its_service_starts_on_the_next_node(
        make: Make) -> None:
    starts = Starts()
    c = make(web_in_domain(make), power=True, runner=starts)
    assert c.table()["service:web"] == ("started", "node3")
    crashed = time.monotonic()
    c.crash("node3")
    calls = fence_calls(c.fencing.log)
    assert len(calls) == 1
    # The device's attributes, the method's device line, then action and nodename.
    assert calls[0].lines == (f"logfile={c.fencing.log}", "port=3", "action=reboot",
                              "nodename=node3")
    assert c.net.switched_off == ["node3"]
    assert c.table()["service:web"] == ("started", "node2")
    assert c.running_on("web") == ["node2"]
    assert calls[0].t < starts.first("node2", "web", crashed)  # fence before the start
    notes = c.managers["node1"].history
    fenced = next(i for i, n in enumerate(notes) if "node3 fenced by agent:power/rec" in n)
    assert fenced > next(i for i, n in enumerate(notes) if "node node3 left" in n)
    assert c.managers["node2"].status()["awaiting_fence"] == []


def test_coordinator_killed_while_fencing_the_next_one_fences_at_once(make: Make) -> None:
    """node1 (the coordinator) is stuck in its fence agent when it dies: node2
    becomes the coordinator at that membership change and fences again from
    the beginning, without waiting for any timeout."""
    log = make.tmp / "fence.log"
    c = make(web_in_domain(make), NODE2_HEAVY, power=True,
             fencing=Fencing(log),
             fence_inner={"node1": slow_agent(60.0)})
    c.wait_fence = False
    c.crash("node3")
    assert wait_for(lambda: len(fence_calls(log)) == 1, 20)  # node1's agent sleeps
    assert c.table()["service:web"] == ("recovering", None)
    stuck = fence_calls(log)[0]
    try:
        killed = time.monotonic()
        c.wait_fence = True
        c.crash("node1")
        assert settle_until(c, lambda: c.table()["service:web"] == ("started", "node2"))
        took = time.monotonic() - killed
        calls = fence_calls(log)
        assert [call.args["nodename"] for call in calls] == ["node3", "node3"]
        assert calls[1].pid != stuck.pid and calls[1].t > killed
        assert took < 20  # the stuck agent sleeps 60 s; nobody waited for it
        assert c.running_on("web") == ["node2"]
        assert c.net.switched_off == ["node3"]  # the dead coordinator switched nothing
    finally:
        os.killpg(stuck.pid, signal.SIGKILL)


def slow_agent(seconds: float) -> Callable[..., ProgramResult]:
    """A fence runner whose agent sleeps ``seconds`` (fence_record's ``sleep``,
    the last value of a key wins)."""
    def run(argv: Sequence[str], *, stdin: bytes | None = None,
            env: Mapping[str, str] | None = None, timeout: float) -> ProgramResult:
        return run_program(argv, stdin=(stdin or b"") + f"sleep={seconds}\n".encode(),
                           env=env, timeout=timeout)
    return run


def test_no_method_stays_recovering_until_an_administrator_acks(
        make: Make, caplog: pytest.LogCaptureFixture) -> None:
    log = make.tmp / "fence.log"
    with caplog.at_level(logging.INFO):
        c = make(web_in_domain(make), fencing=Fencing(log, without=("node3",)),
                 warn_interval=0.2)
        c.wait_fence = False  # a fence without a method never ends by itself
        c.crash("node3")
        assert wait_for(lambda: sum("cannot fence node3" in r.getMessage()
                                    for r in caplog.records) >= 2, 10)
    assert c.table()["service:web"] == ("recovering", None)
    status = c.managers["node2"].status()
    web = next(s for s in status["services"] if s["name"] == "service:web")
    assert web["reason"] == "awaiting fence of node3"
    assert status["awaiting_fence"] == ["node3"]
    assert {m["name"]: m["awaiting_fence"] for m in status["members"]} == \
        {"node1": False, "node2": False, "node3": True}
    assert c.running_on("web") == []
    assert fence_calls(log) == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rgmanager.manager"):
        box = _in_thread(c, lambda: c.managers["node2"].fence_ack("node3"))
    reply = box[0]
    assert isinstance(reply, Reply) and reply.code == codes.ESUCCESS, reply
    assert any(r.levelname == "WARNING" and
               r.getMessage() == "fence of node3 acknowledged by an administrator"
               for r in caplog.records)
    c.wait_fence = True
    c.settle()
    assert c.table()["service:web"] == ("started", "node2")
    assert c.running_on("web") == ["node2"]
    assert not c.managers["node1"].fence.fencing()  # the endless attempt was cancelled
    assert any("node3 fenced by an administrator" in n for n in c.managers["node1"].history)


def test_fence_ack_is_refused_for_a_member_an_unknown_node_and_without_quorum(
        make: Make) -> None:
    c = make(svc("web", make.lsb))
    m = c.managers["node1"]
    up = m.fence_ack("node2")
    assert up.code == codes.EINVAL and "is a member of the cluster: it is up" in up.text
    assert m.fence_ack("node9").code == codes.ENODE
    c.managers.pop("node3").shutdown(stop_services=True)  # a clean leave needs no fence
    c.settle()
    idle = m.fence_ack("node3")
    assert idle.code == codes.EINVAL and "not awaiting fence" in idle.text
    c.net.partition(["node1"], ["node2"])
    c.settle()
    assert m.fence_ack("node3").code == codes.EQUORUM
    assert fence_calls(c.fencing.log) == []


def test_failing_fence_retries_in_rounds_until_a_reload_fixes_it(make: Make) -> None:
    log = make.tmp / "fence.log"
    c = make(web_in_domain(make), fencing=Fencing(log, device='exit_code="1"'))
    c.wait_fence = False
    c.crash("node3")
    assert wait_for(lambda: len(fence_calls(log)) >= 3, 20)  # round after round
    assert c.table()["service:web"] == ("recovering", None)
    conf2 = make.tmp / "cluster2.conf"
    conf2.write_text(cluster_conf(web_in_domain(make), nodes=3, fencing=Fencing(log),
                                  version=2))
    for n in ("node1", "node2"):
        done = _in_thread(c, partial(c.managers[n].reload, load(conf2, RULES)))
        assert isinstance(done[0], list), done
    c.wait_fence = True
    assert settle_until(c, lambda: c.table()["service:web"] == ("started", "node2"))
    calls = fence_calls(log)
    assert all(call.args.get("exit_code") == "1" for call in calls[:3])
    assert "exit_code" not in calls[-1].args and calls[-1].args["nodename"] == "node3"
    assert c.running_on("web") == ["node2"]


def test_node_that_rejoins_before_its_fence_is_still_fenced(make: Make) -> None:
    """node3 comes back while the coordinator's (slow) switch is still on its way:
    it is a member again but takes nothing, its service waits; the fence then
    switches it off (the mock switch), and only then does web start on node2.
    Booted again, node3 gets web back (ordered domain, failback)."""
    gate = threading.Event()
    starts = Starts()
    c = make(web_in_domain(make), power=True, runner=starts,
             fence_inner={"node1": gated(gate)})
    c.wait_fence = False
    crashed = time.monotonic()
    c.crash("node3")
    assert c.managers["node1"].fence.fencing() == {"node3"}
    c.restart("node3")
    status = c.managers["node1"].status()
    node3 = next(m for m in status["members"] if m["name"] == "node3")
    assert node3["rgmanager"] and node3["awaiting_fence"]
    assert c.table()["service:web"] == ("recovering", None)
    assert c.table("node3") == c.table("node1")
    assert c.running_on("web") == []
    assert any("rejoined before it was fenced" in n for n in c.managers["node1"].history)
    gate.set()
    c.wait_fence = True
    assert settle_until(c, lambda: c.table()["service:web"] == ("started", "node2"))
    assert c.net.switched_off == ["node3"] and "node3" not in c.managers
    calls = fence_calls(c.fencing.log)
    assert len(calls) == 1 and calls[0].t < starts.first("node2", "web", crashed)
    c.restart("node3")
    assert c.table()["service:web"] == ("started", "node3")
    assert c.running_on("web") == ["node3"]




@pytest.mark.parametrize("how", ["shutdown", "cluster lost", "quorum lost"])
def test_a_coordinator_that_stops_being_one_cancels_and_the_next_takes_over(
        make: Make, how: str) -> None:
    """node1 waits for an administrator to ack node3 (no method). It stops
    being the coordinator - shut down (its Fencer is closed), corosync lost
    under it (ClusterLost), or cut off alone without quorum - and cancels;
    node2, the coordinator at that membership change, takes the wait over at
    once, and the ack then works through node2."""
    log = make.tmp / "fence.log"
    c = make(web_in_domain(make), NODE2_HEAVY, fencing=Fencing(log, without=("node3",)))
    c.wait_fence = False
    c.crash("node3")
    m1, m2 = c.managers["node1"], c.managers["node2"]
    assert m1.fence.fencing() == {"node3"} and m2.fence.fencing() == frozenset()
    fencer = m1.fence.fencer
    assert isinstance(fencer, Fencer)
    if how == "shutdown":
        with c._mlock:
            del c.managers["node1"]
        m1.shutdown(stop_services=True)
    elif how == "cluster lost":
        c.net.lose_channel("node1")
    else:
        c.net.partition(["node1"], ["node2"])
    c.settle()
    assert fencer.fencing() == frozenset() and not m1.fence.coordinating
    assert m2.fence.fencing() == {"node3"} and m2.fence.coordinating
    assert c.table("node2")["service:web"] == ("recovering", None)
    reply = _in_thread(c, lambda: m2.fence_ack("node3"))[0]
    assert isinstance(reply, Reply) and reply.code == codes.ESUCCESS
    c.wait_fence = True
    c.settle()
    assert c.table("node2")["service:web"] == ("started", "node2")
    assert c.running_on("web") == ["node2"]
