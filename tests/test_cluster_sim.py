"""The sim backend must behave like CPG + votequorum, or manager tests built on it
prove nothing: same total order everywhere, membership changes at the same
point of every member's stream, quorum per partition, deterministic replay."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rgmanager.cluster import ClusterLost, Delivery, MembershipChange, Message
from rgmanager.cluster.sim import SimCluster, SimLivelock, SimNetwork
from rgmanager.executor import run_program

from .manager_helpers import FENCE_RECORD, fence_calls

Event = tuple[Any, ...]


def norm(item: Delivery) -> Event:
    """A comparable, printable form of a delivery."""
    if isinstance(item, Message):
        return ("msg", item.sender, dict(item.payload))
    if isinstance(item, ClusterLost):
        return ("lost", item.reason)
    return ("change", item.membership.members, item.membership.quorate,
            item.joined, item.left)


class Recorder:
    """Records every node's stream; optional per-node reactions run after recording."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.streams: dict[str, list[Delivery]] = {n: [] for n in net.names}
        self.react: dict[str, Callable[[SimCluster, Delivery], None]] = {}

    def handler(self, name: str) -> Callable[[Delivery], None]:
        def deliver(item: Delivery) -> None:
            self.streams[name].append(item)
            if name in self.react:
                self.react[name](self.net.node(name), item)
        return deliver

    def start(self, *names: str) -> None:
        for name in names or self.net.names:
            self.net.node(name).start(self.handler(name))

    def events(self, name: str, since: int = 0) -> list[Event]:
        return [norm(i) for i in self.streams[name][since:]]

    def mark(self) -> dict[str, int]:
        return {n: len(s) for n, s in self.streams.items()}


def started(names: tuple[str, ...] = ("a", "b", "c"), **kw: Any) -> tuple[SimNetwork, Recorder]:
    net = SimNetwork(names, **kw)
    rec = Recorder(net)
    rec.start()
    net.run_until_idle()
    return net, rec


def test_start_gives_joins_in_order() -> None:
    net, rec = started()
    assert rec.events("a") == [
        ("change", ("a",), False, ("a",), ()),
        ("change", ("a", "b"), True, ("b",), ()),
        ("change", ("a", "b", "c"), True, ("c",), ()),
    ]
    # A joiner's first delivery lists itself as joined, with the current members.
    assert rec.events("c") == [("change", ("a", "b", "c"), True, ("c",), ())]
    # The join of c is the same change (same epoch) on every member.
    epochs = {rec.streams[n][-1].membership.epoch for n in "abc"}  # type: ignore[union-attr]
    assert len(epochs) == 1
    assert net.node("b").membership().members == ("a", "b", "c")


def test_all_members_see_all_messages_in_same_order() -> None:
    net, rec = started()
    mark = rec.mark()
    for i in range(5):
        for name in ("c", "a", "b"):
            net.node(name).broadcast({"from": name, "i": i})
    assert net.pending() == 45
    assert net.run_until_idle() == 45
    a = rec.events("a", mark["a"])
    assert len(a) == 15
    assert a == rec.events("b", mark["b"]) == rec.events("c", mark["c"])
    assert a[0] == ("msg", "c", {"from": "c", "i": 0})  # global send order
    assert net.pending() == 0


def test_crash_change_at_same_position_for_survivors() -> None:
    net, rec = started()
    mark = rec.mark()
    net.node("a").broadcast({"n": 1})
    net.node("c").broadcast({"n": 2})
    net.crash("c")
    net.node("b").broadcast({"n": 3})
    net.node("c").broadcast({"n": 4})  # dead node: dropped
    net.run_until_idle()
    a, b = rec.events("a", mark["a"]), rec.events("b", mark["b"])
    assert a == b == [
        ("msg", "a", {"n": 1}),
        ("msg", "c", {"n": 2}),
        ("change", ("a", "b"), True, (), ("c",)),  # 2 of 3 votes: still quorate
        ("msg", "b", {"n": 3}),
    ]
    assert rec.events("c", mark["c"]) == []  # receives nothing more, not even what was queued
    assert net.node("a").membership().members == ("a", "b")
    assert net.groups() == [("a", "b")]


def test_second_crash_loses_quorum() -> None:
    net, rec = started()
    net.crash("c")
    net.crash("b")
    net.crash("b")  # idempotent
    net.run_until_idle()
    assert rec.events("a")[-1] == ("change", ("a",), False, (), ("b",))
    assert net.node("a").membership().quorate is False


def test_partition_quorum_isolation_and_heal() -> None:
    net, rec = started()
    mark = rec.mark()
    before = net.node("a").membership().epoch
    net.partition(["a"], ["b", "c"])
    net.node("a").broadcast({"side": "a"})
    net.node("b").broadcast({"side": "bc"})
    net.run_until_idle()
    assert rec.events("a", mark["a"]) == [
        ("change", ("a",), False, (), ("b", "c")),
        ("msg", "a", {"side": "a"}),
    ]
    assert rec.events("b", mark["b"]) == rec.events("c", mark["c"]) == [
        ("change", ("b", "c"), True, (), ("a",)),
        ("msg", "b", {"side": "bc"}),
    ]
    assert net.node("a").membership().epoch > before

    mark = rec.mark()
    net.heal()
    net.node("c").broadcast({"side": "all"})
    net.run_until_idle()
    assert rec.events("a", mark["a"]) == [
        ("change", ("a", "b", "c"), True, ("b", "c"), ()),
        ("msg", "c", {"side": "all"}),
    ]
    assert rec.events("b", mark["b"]) == rec.events("c", mark["c"]) == [
        ("change", ("a", "b", "c"), True, ("a",), ()),
        ("msg", "c", {"side": "all"}),
    ]
    ms = [net.node(n).membership() for n in "abc"]
    assert len({m.epoch for m in ms}) == 1 and ms[0].quorate


def test_partition_leaves_unnamed_nodes_alone_and_rejects_bad_input() -> None:
    net, rec = started()
    net.partition(["a", "b"])
    net.run_until_idle()
    assert net.groups() == [("a", "b"), ("c",)]
    assert net.node("c").membership().quorate is False
    with pytest.raises(ValueError):
        net.partition(["a"], ["a", "b"])
    with pytest.raises(KeyError):
        net.partition(["zz"])


def test_restart_after_crash_rejoins() -> None:
    net, rec = started()
    net.crash("c")
    net.run_until_idle()
    with pytest.raises(RuntimeError):
        net.node("c").start(rec.handler("c"))  # must restart first
    mark = rec.mark()
    net.restart("c")
    assert net.pending() == 0  # booted but not joined yet
    rec.start("c")
    net.run_until_idle()
    assert rec.events("c", mark["c"]) == [("change", ("a", "b", "c"), True, ("c",), ())]
    assert rec.events("a", mark["a"]) == [("change", ("a", "b", "c"), True, ("c",), ())]
    assert rec.events("b", mark["b"]) == rec.events("a", mark["a"])
    with pytest.raises(RuntimeError):
        net.restart("c")  # not crashed


def test_restart_into_its_partition() -> None:
    net, rec = started()
    net.partition(["a"], ["b", "c"])
    net.crash("c")
    net.restart("c", rec.handler("c"))
    net.run_until_idle()
    assert net.groups() == [("a",), ("b", "c")]
    assert net.node("c").membership().members == ("b", "c")


def test_stop_is_a_leave_and_start_again_rejoins() -> None:
    net, rec = started()
    net.node("b").stop()
    net.node("b").stop()  # no-op
    net.run_until_idle()
    assert rec.events("a")[-1] == ("change", ("a", "c"), True, (), ("b",))
    mark = rec.mark()
    net.node("a").broadcast({"x": 1})
    net.run_until_idle()
    assert rec.events("b", mark["b"]) == []
    rec.start("b")
    net.run_until_idle()
    assert rec.events("b", mark["b"]) == [("change", ("a", "b", "c"), True, ("b",), ())]
    with pytest.raises(RuntimeError):
        rec.start("b")  # already started


def test_two_node() -> None:
    net, rec = started(("a", "b"), two_node=True)
    net.crash("b")
    net.run_until_idle()
    assert net.node("a").membership().quorate is True
    plain, _ = started(("a", "b"))
    plain.crash("b")
    plain.run_until_idle()
    assert plain.node("a").membership().quorate is False
    with pytest.raises(ValueError):
        SimNetwork(["a", "b", "c"], two_node=True)


def test_votes_and_expected_votes() -> None:
    net, _ = started(votes={"a": 3})
    net.partition(["a"], ["b", "c"])
    net.run_until_idle()
    assert net.node("a").membership().quorate is True
    assert net.node("b").membership().quorate is False
    # expected_votes below what the cluster has seen together: votequorum
    # raises it to the votes seen (3), so only the majority side is quorate
    # (the old sim made both sides quorate: a split brain).
    low, _ = started(expected_votes=1)
    low.partition(["a"], ["b", "c"])
    low.run_until_idle()
    assert low.node("a").membership().quorate is False
    assert low.node("b").membership().quorate is True


def test_reentrant_broadcast_from_callback() -> None:
    net, rec = started()

    def pong(node: SimCluster, item: Delivery) -> None:
        if isinstance(item, Message) and "ping" in item.payload:
            node.broadcast({"pong": item.payload["ping"]})

    rec.react["b"] = pong
    mark = rec.mark()
    net.node("a").broadcast({"ping": 1})
    net.node("c").broadcast({"ping": 2})
    assert net.run_until_idle() == 12
    a = rec.events("a", mark["a"])
    assert a == rec.events("b", mark["b"]) == rec.events("c", mark["c"])
    pongs = [e for e in a if "pong" in e[2]]
    assert pongs == [("msg", "b", {"pong": 1}), ("msg", "b", {"pong": 2})]


def test_livelock_is_reported() -> None:
    net, rec = started()
    rec.react["a"] = lambda node, item: node.broadcast({"again": True})
    net.node("a").broadcast({"again": True})
    with pytest.raises(SimLivelock):
        net.run_until_idle(max_steps=50)


def test_run_until_idle_refuses_reentry() -> None:
    net, rec = started()
    errors: list[BaseException] = []

    def nested(node: SimCluster, item: Delivery) -> None:
        try:
            net.run_until_idle()
        except RuntimeError as e:
            errors.append(e)

    rec.react["a"] = nested
    net.node("a").broadcast({})
    net.run_until_idle()
    assert len(errors) == 1


def test_non_json_payload_fails_in_caller() -> None:
    net, _ = started()
    node = net.node("a")
    with pytest.raises(TypeError):
        node.broadcast({"x": object()})
    with pytest.raises(ValueError):
        node.broadcast({"x": math.nan})
    with pytest.raises(TypeError):
        node.broadcast(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert net.pending() == 0


def test_payload_is_copied_per_receiver() -> None:
    net, rec = started()

    def vandal(node: SimCluster, item: Delivery) -> None:
        if isinstance(item, Message):
            item.payload["list"].append("mutated")

    rec.react["a"] = vandal
    mark = rec.mark()
    original = {"list": [1]}
    net.node("a").broadcast(original)
    net.run_until_idle()
    assert original == {"list": [1]}
    assert rec.events("b", mark["b"]) == [("msg", "a", {"list": [1]})]
    assert rec.events("c", mark["c"]) == [("msg", "a", {"list": [1]})]


def test_handler_exception_is_logged_and_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    net, rec = started()

    def boom(node: SimCluster, item: Delivery) -> None:
        raise RuntimeError("handler bug")

    rec.react["a"] = boom
    mark = rec.mark()
    net.node("b").broadcast({"n": 1})
    net.node("b").broadcast({"n": 2})
    with caplog.at_level(logging.ERROR, logger="rgmanager.cluster.sim"):
        assert net.run_until_idle() == 6
    assert len(rec.events("a", mark["a"])) == 2
    assert sum("handler bug" in (r.exc_text or "") for r in caplog.records) == 2


def test_not_started_node_gets_nothing() -> None:
    net = SimNetwork(["a", "b", "c"])
    rec = Recorder(net)
    rec.start("a", "b")
    net.node("c").broadcast({"lost": True})  # not a member: dropped
    net.node("a").broadcast({"seen": True})
    net.run_until_idle()
    assert rec.events("c") == []
    assert rec.events("b") == [("change", ("a", "b"), True, ("b",), ()),
                               ("msg", "a", {"seen": True})]
    assert net.node("c").membership().members == ()


def _script() -> dict[str, list[Event]]:
    net = SimNetwork(["n1", "n2", "n3", "n4"])
    rec = Recorder(net)

    def echo(node: SimCluster, item: Delivery) -> None:
        if isinstance(item, MembershipChange) and item.left:
            node.broadcast({"saw_left": list(item.left), "by": node.local_node})
        if isinstance(item, Message) and item.payload.get("hop", 0) < 3:
            node.broadcast({"hop": item.payload.get("hop", 0) + 1, "by": node.local_node})

    for n in net.names:
        rec.react[n] = echo
    rec.start()
    net.node("n2").broadcast({"hop": 2})
    net.partition(["n1", "n2"], ["n3", "n4"])
    net.node("n4").broadcast({"hop": 1})
    net.run_until_idle()
    net.crash("n3")
    net.heal()
    net.run_until_idle()
    net.restart("n3", rec.handler("n3"))
    net.node("n1").broadcast({"hop": 0})
    net.run_until_idle()
    return {n: rec.events(n) for n in net.names}


def test_deterministic_replay() -> None:
    first, second = _script(), _script()
    assert first == second
    assert sum(len(s) for s in first.values()) > 50  # the script really did something


def test_threaded_mode_delivers_and_waits() -> None:
    net = SimNetwork(["a", "b", "c"], threaded=True)
    rec = Recorder(net)

    def pong(node: SimCluster, item: Delivery) -> None:
        if isinstance(item, Message) and "ping" in item.payload:
            node.broadcast({"pong": item.payload["ping"]})

    rec.react["b"] = pong
    try:
        rec.start()
        assert net.wait_idle(5)
        with pytest.raises(RuntimeError):
            net.run_until_idle()
        mark = rec.mark()
        for i in range(20):
            net.node("abc"[i % 3]).broadcast({"ping": i})
        assert net.wait_idle(5)
        assert net.pending() == 0
        a = rec.events("a", mark["a"])
        assert len(a) == 40
        assert a == rec.events("b", mark["b"]) == rec.events("c", mark["c"])

        mark = rec.mark()
        net.crash("c")
        net.node("a").broadcast({"after": "crash"})
        assert net.wait_idle(5)
        assert rec.events("c", mark["c"]) == []
        assert rec.events("a", mark["a"]) == rec.events("b", mark["b"]) == [
            ("change", ("a", "b"), True, (), ("c",)),
            ("msg", "a", {"after": "crash"}),
        ]
        net.restart("c", rec.handler("c"))
        assert net.wait_idle(5)
        assert net.node("c").membership().members == ("a", "b", "c")
    finally:
        net.close()


# -- the power-switch mock ------------------------------------------------------------


def test_crash_runs_the_registered_power_off_once() -> None:
    net, rec = started()
    off: list[str] = []
    net.on_power_off("b", lambda: off.append("b"))
    net.crash("b")
    net.crash("b")  # idempotent: already off
    assert off == ["b"]
    net.run_until_idle()
    assert rec.events("a")[-1] == ("change", ("a", "c"), True, (), ("b",))
    net.on_power_off("c", None)
    net.power_off("c")  # nothing registered: only leaves the ring
    net.run_until_idle()
    assert net.groups() == [("a",)]


def _fence_stdin(victim: str, log: str, **extra: str) -> bytes:
    lines = [f"logfile={log}", *(f"{k}={v}" for k, v in extra.items()), f"nodename={victim}"]
    return "".join(line + "\n" for line in lines).encode()


def test_a_successful_fence_agent_switches_its_victim_off(tmp_path: Path) -> None:
    """The agent is a real process (fence_record); its success crashes the
    victim; a failure, a 'status' or an unknown node switches nothing."""
    net, _ = started()
    off: list[str] = []
    for n in net.names:
        net.on_power_off(n, partial(off.append, n))
    log = str(tmp_path / "fence.log")
    run = net.fence_runner("a")
    assert not run([str(FENCE_RECORD)], stdin=_fence_stdin("b", log, exit_code="1"),
                   timeout=30).ok
    assert run([str(FENCE_RECORD)], stdin=_fence_stdin("b", log, action="status"),
               timeout=30).ok
    assert run([str(FENCE_RECORD)], stdin=_fence_stdin("zz", log), timeout=30).ok
    assert off == [] and net.node("b").alive
    assert run([str(FENCE_RECORD)], stdin=_fence_stdin("b", log, action="off"),
               timeout=30).ok
    assert off == ["b"] and not net.node("b").alive and net.switched_off == ["b"]
    assert len(fence_calls(tmp_path / "fence.log")) == 4


def test_a_dead_fencer_switches_nothing_off(tmp_path: Path) -> None:
    """The coordinator dies while its agent runs: the agent 'dies with it'."""
    net, _ = started()

    def inner(argv: Any, **kw: Any) -> Any:
        net.crash("a")  # the fencing node goes down while its agent runs
        return run_program(argv, **kw)

    run = net.fence_runner("a", inner)
    result = run([str(FENCE_RECORD)], stdin=_fence_stdin("b", str(tmp_path / "f.log")),
                 timeout=30)
    assert not result.ok and "a is off" in result.stderr
    assert net.node("b").alive and net.switched_off == []
