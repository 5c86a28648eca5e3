"""CorosyncCluster on a real 3-node corosync (token 500) in network namespaces.

One lab for the module; every node runs an agent (``cluster_lab.py agent``:
one CorosyncCluster, deliveries as JSON lines). Each test starts from
``full()`` (3 corosyncs, 3 agents, everyone a member and quorate), restoring
what an earlier test broke, so the tests also pass alone. Timings are
printed (``pytest -s``) as ``TIMING ...`` lines.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .cluster_lab import PYTHON, REPO, CorosyncLab, lab_factory, probe, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ALL = ["node1", "node2", "node3"]
Event = dict[str, Any]


class AgentProc:
    """One agent process inside a node, with its deliveries collected."""

    def __init__(self, lab: CorosyncLab, nodeid: int) -> None:
        self.lab = lab
        self.nodeid = nodeid
        self.name = f"node{nodeid}"
        nodes = ",".join(f"{i}={n}" for i, n in lab.names.items())
        self.errpath = lab.dir / f"agent{nodeid}.{time.monotonic_ns()}.err"
        self.started = time.monotonic()
        self.proc = lab.popen(
            nodeid, [PYTHON, str(REPO / "tests" / "cluster_lab.py"), "agent",
                     "--local", self.name, "--nodes", nodes, "--group", "rgmtest"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.errpath, "w"),
            text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        self.events: list[Event] = []
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, pred: Callable[[Event], bool], timeout: float, what: str,
             start: int = 0) -> Event:
        """The first event from index ``start`` on matching ``pred``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout}s; events: "
                        f"{self.events[start:][-8:]}; stderr: {self.stderr()[-1500:]}")
                self.cond.wait(min(left, 0.2))

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def since(self, start: int, kind: str | None = None) -> list[Event]:
        with self.cond:
            return [e for e in self.events[start:] if kind is None or e["ev"] == kind]

    def stderr(self) -> str:
        try:
            return self.errpath.read_text()
        except OSError:
            return ""

    def ask(self, cmd: str, timeout: float = 5) -> Event:
        rid = f"{cmd}-{time.monotonic_ns()}"
        at = self.mark()
        self.send({"cmd": cmd, "id": rid})
        return self.wait(lambda e: e.get("id") == rid and e["ev"] == "reply", timeout,
                         f"reply to {cmd}", at)


def is_change(members: list[str] | None = None, quorate: bool | None = None,
              joined: list[str] | None = None,
              left: list[str] | None = None) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        return (e["ev"] == "change"
                and (members is None or e["members"] == members)
                and (quorate is None or e["quorate"] == quorate)
                and (joined is None or e["joined"] == joined)
                and (left is None or e["left"] == left))
    return pred


class Cluster3:
    def __init__(self, lab: CorosyncLab) -> None:
        self.lab = lab
        self.agents: dict[int, AgentProc] = {}
        self.timings: dict[str, float] = {}

    def agent(self, i: int) -> AgentProc:
        return self.agents[i]

    def start_agent(self, i: int) -> AgentProc:
        a = AgentProc(self.lab, i)
        self.agents[i] = a
        return a

    def full(self) -> None:
        """Everything up, every agent a member of a quorate 3-member group."""
        lab = self.lab
        for i in lab.nodes:
            lab.heal(i)
            node = lab.node(i)
            if node.holder is None or node.holder.poll() is not None:
                lab.start_node(i)
            elif node.corosync is None or node.corosync.poll() is not None:
                lab.start_corosync(i)
        for i in lab.nodes:
            if i not in self.agents or not self.agents[i].alive():
                self.start_agent(i)
        for a in self.agents.values():
            a.wait(lambda e: e["ev"] == "change" and e["members"] == ALL and e["quorate"],
                   30, "full quorate membership", self.last_change_index(a))

    @staticmethod
    def last_change_index(a: AgentProc) -> int:
        with a.cond:
            for k in range(len(a.events) - 1, -1, -1):
                if a.events[k]["ev"] in ("change", "lost"):
                    return k
        return 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster3]:
    reason = probe()
    if reason:
        pytest.skip(reason)
    make, close_all = lab_factory()
    try:
        t0 = time.monotonic()
        lab = make(3, token=500)
        c = Cluster3(lab)
        c.timings["corosync 3 nodes quorate"] = time.monotonic() - t0
        yield c
        for name, value in c.timings.items():
            print(f"TIMING {name}: {value * 1000:.1f} ms")
    finally:
        close_all()


# ---------------------------------------------------------------------- tests

def test_three_agents_join_quorate(cluster: Cluster3) -> None:
    t0 = time.monotonic()
    cluster.full()
    cluster.timings["agents start -> full membership"] = time.monotonic() - t0
    for a in cluster.agents.values():
        changes = a.since(0, "change")
        first = changes[0]
        assert first["joined"] == [a.name], first  # a newcomer first sees itself join
        assert a.name in first["members"]
        assert changes[-1]["members"] == ALL and changes[-1]["quorate"]
        epochs = [c["epoch"] for c in changes]
        assert epochs == sorted(set(epochs)), epochs
        assert a.ask("online")["online"] == ALL
        assert a.ask("membership")["members"] == ALL


def test_total_order_own_messages_and_broadcast_from_deliver(cluster: Cluster3) -> None:
    cluster.full()
    marks = {i: a.mark() for i, a in cluster.agents.items()}
    per_node = 20
    for k in range(per_node):  # interleave senders as fast as the pipes take it
        for i, a in cluster.agents.items():
            a.send({"cmd": "broadcast", "payload": {"from": i, "k": k}})
    # node1 asks the others to broadcast from inside their deliver callback
    cluster.agent(1).send({"cmd": "broadcast", "payload": {"echo": "ping"}})
    expected = 3 * per_node + 1 + 2

    def msgs(i: int) -> list[tuple[str, str]]:
        return [(e["sender"], json.dumps(e["payload"], sort_keys=True))
                for e in cluster.agent(i).since(marks[i], "msg")]

    for i in cluster.agents:
        def enough(i: int = i) -> bool:
            return len(msgs(i)) >= expected

        wait_for(enough, 15, f"{expected} messages on node{i}")
    streams = {i: msgs(i) for i in cluster.agents}
    assert streams[1] == streams[2] == streams[3]
    assert len(streams[1]) == expected
    for i in cluster.agents:  # own messages came back, in the order sent
        own = [json.loads(p)["k"] for s, p in streams[1]
               if s == f"node{i}" and "k" in json.loads(p)]
        assert own == list(range(per_node))
    echoes = sorted(json.loads(p)["by"] for s, p in streams[1] if "echo_of" in p)
    assert echoes == ["node2", "node3"]


def test_delivery_latency(cluster: Cluster3) -> None:
    cluster.full()
    a1 = cluster.agent(1)
    own: list[float] = []
    others: list[float] = []
    for k in range(20):
        marks = {i: a.mark() for i, a in cluster.agents.items()}
        sent = time.monotonic()
        a1.send({"cmd": "broadcast", "payload": {"lat": k}})
        for i, a in cluster.agents.items():
            def probe_k(e: Event, k: int = k) -> bool:
                return e["ev"] == "msg" and e["payload"].get("lat") == k

            ev = a.wait(probe_k, 5, f"latency probe {k}", marks[i])
            (own if i == 1 else others).append(ev["t"] - sent)
    own.sort()
    others.sort()
    cluster.timings["broadcast -> own delivery, median"] = own[len(own) // 2]
    cluster.timings["broadcast -> other node delivery, median"] = others[len(others) // 2]
    assert own[len(own) // 2] < 0.5


def test_large_payload_fragmented(cluster: Cluster3) -> None:
    cluster.full()
    size = 2 * 1024 * 1024
    marks = {i: a.mark() for i, a in cluster.agents.items()}
    sender = cluster.agent(2)
    sent = time.monotonic()
    sender.send({"cmd": "blob", "size": size, "id": "big"})
    sha = sender.wait(lambda e: e.get("id") == "big" and e["ev"] == "reply", 10,
                      "blob sha", marks[2])["sha256"]
    # a small message right behind it from another node: order is still total
    cluster.agent(3).send({"cmd": "broadcast", "payload": {"after": "big"}})
    orders = {}
    for i, a in cluster.agents.items():
        ev = a.wait(lambda e: e["ev"] == "msg" and e["payload"].get("id") == "big", 20,
                    "the 2 MiB message", marks[i])
        assert ev["sender"] == "node2"
        assert ev["payload"]["blob_len"] == size and ev["payload"]["blob_sha256"] == sha
        a.wait(lambda e: e["ev"] == "msg" and e["payload"].get("after") == "big", 10,
               "the message after", marks[i])
        orders[i] = [e["payload"].get("id") or e["payload"].get("after")
                     for e in a.since(marks[i], "msg")]
        cluster.timings[f"2 MiB broadcast -> delivered on node{i}"] = ev["t"] - sent
    assert orders[1] == orders[2] == orders[3]


def test_sigkill_node_survivors_see_it_leave_still_quorate(cluster: Cluster3) -> None:
    cluster.full()
    marks = {i: a.mark() for i, a in cluster.agents.items()}
    killed_at = time.monotonic()
    cluster.lab.kill_node(3)
    for i in (1, 2):
        ev = cluster.agent(i).wait(is_change(["node1", "node2"], left=["node3"]), 10,
                                   "node3 in left", marks[i])
        assert ev["quorate"] is True
        cluster.timings[f"SIGKILL node3 -> node{i} sees it leave"] = ev["t"] - killed_at
        assert not any(not e["quorate"] for e in cluster.agent(i).since(marks[i], "change"))
    wait_for(lambda: cluster.agent(1).ask("online")["online"] == ["node1", "node2"], 5,
             "node3 offline in votequorum")
    # and back: a rebooted node3 joins as a newcomer
    cluster.full()
    first = cluster.agent(3).since(0, "change")[0]
    assert first["joined"] == ["node3"]


def test_cut_link_single_node_inquorate_pair_quorate(cluster: Cluster3) -> None:
    cluster.full()
    marks = {i: a.mark() for i, a in cluster.agents.items()}
    cut_at = time.monotonic()
    cluster.lab.cut(3)
    a3 = cluster.agent(3)
    ev3 = a3.wait(is_change(["node3"], quorate=False), 15, "node3 alone, inquorate", marks[3])
    cluster.timings["cut link -> isolated node sees itself inquorate"] = ev3["t"] - cut_at
    # never a stale "alone but quorate" view
    assert not any(e["members"] == ["node3"] and e["quorate"]
                   for e in a3.since(marks[3], "change"))
    for i in (1, 2):
        ev = cluster.agent(i).wait(is_change(["node1", "node2"], left=["node3"]), 15,
                                   "node3 cut off", marks[i])
        assert ev["quorate"] is True
        assert all(e["quorate"] for e in cluster.agent(i).since(marks[i], "change"))
    assert a3.ask("online")["online"] == ["node3"]
    marks = {i: a.mark() for i, a in cluster.agents.items()}
    healed_at = time.monotonic()
    cluster.lab.heal(3)
    ev3 = a3.wait(is_change(ALL, quorate=True), 20, "merge after heal", marks[3])
    assert set(ev3["joined"]) <= {"node1", "node2"}
    cluster.timings["heal link -> merged and quorate on node3"] = ev3["t"] - healed_at
    for i in (1, 2):
        # A merge may come as several confchgs (e.g. [node2, node3], then node1
        # joins), and CPG may even report the other survivor as left and rejoined
        # in the same merge (its previous ring differed): ask only that node3 is
        # joined on the way to the full quorate group.
        a = cluster.agent(i)
        a.wait(is_change(ALL, quorate=True), 20, "full group after heal", marks[i])
        assert any("node3" in e["joined"] for e in a.since(marks[i], "change"))


def test_corosync_killed_under_backend_cluster_lost_then_rejoin(cluster: Cluster3) -> None:
    cluster.full()
    a2 = cluster.agent(2)
    mark = a2.mark()
    killed_at = time.monotonic()
    cluster.lab.kill_corosync(2)
    lost = a2.wait(lambda e: e["ev"] == "lost", 5, "ClusterLost", mark)
    cluster.timings["corosync SIGKILL -> ClusterLost"] = lost["t"] - killed_at
    assert a2.alive()
    assert "CS_ERR_LIBRARY" in lost["reason"]
    assert a2.ask("membership")["members"] == []
    after_lost = a2.mark()
    # a backend started while corosync is down waits for it: one line, no traceback
    fresh = AgentProc(cluster.lab, 2)
    wait_for(lambda: "waiting for it" in fresh.stderr(), 10, "the waiting log line")
    restarted_at = time.monotonic()
    cluster.lab.start_corosync(2)
    first = a2.wait(lambda e: e["ev"] == "change", 20, "rejoin", after_lost)
    assert first["joined"] == ["node2"], first  # a fresh member
    cluster.timings["corosync restart -> backend rejoined"] = first["t"] - restarted_at
    a2.wait(is_change(ALL, quorate=True), 20, "full membership again", after_lost)
    # one clear log line while waiting, and no traceback
    err = a2.stderr()
    assert "Traceback" not in err
    assert err.count("lost the connection to corosync") == 1
    first = fresh.wait(lambda e: e["ev"] == "change", 20, "fresh agent joins")
    assert first["joined"] == ["node2"]
    err = fresh.stderr()
    assert "Traceback" not in err
    assert err.count("corosync is not available (cpg_model_initialize: CS_ERR_LIBRARY); "
                     "waiting for it") == 1, err
    assert fresh.proc.stdin is not None
    fresh.proc.stdin.close()  # EOF: the agent calls stop()
    fresh.wait(lambda e: e["ev"] == "stopped", 10, "stop")
    assert fresh.proc.wait(timeout=10) == 0
    # still talks
    mark = a2.mark()
    a2.send({"cmd": "broadcast", "payload": {"back": 2}})
    for a in cluster.agents.values():
        a.wait(lambda e: e["ev"] == "msg" and e["payload"] == {"back": 2}, 5, "message",
               mark if a is a2 else 0)


def test_fragments_reassembled_per_sender_without_corosync() -> None:
    """Reassembly alone (no corosync, no root): two senders' fragments interleaved,
    a foreign message and an out-of-sequence fragment are dropped, not delivered."""
    from rgmanager.cluster.base import Message
    from rgmanager.cluster.corosync import Wire

    names = {1: "node1", 2: "node2"}
    got: list[Any] = []
    frags = {}
    for nodeid, name in names.items():
        w = Wire(fragment_size=1024)
        frags[nodeid] = w.encode({"from": name, "blob": name * 2000}) + \
            w.encode({"small": name})
    assert len(frags[1]) > 3  # fragmented
    rx = Wire()

    def receive(nodeid: int, pid: int, data: bytes) -> None:
        payload = rx.decode(nodeid, pid, data)
        if payload is not None:
            got.append(Message(names[nodeid], payload))

    a, b = list(frags[1]), list(frags[2])
    while a or b:  # interleave the two senders fragment by fragment
        if a:
            receive(1, 100, a.pop(0))
        if b:
            receive(2, 200, b.pop(0))
    receive(2, 200, b"not ours")
    receive(1, 100, frags[1][1])  # a middle fragment with no start: dropped
    assert [type(m) for m in got] == [Message] * 4
    by = {(m.sender, "blob" in m.payload): m.payload for m in got}
    assert by[("node1", True)] == {"from": "node1", "blob": "node1" * 2000}
    assert by[("node2", True)] == {"from": "node2", "blob": "node2" * 2000}
    assert [m.payload for m in got if m.sender == "node1"][1] == {"small": "node1"}
    assert rx.unfinished == 0


def test_broadcast_of_a_non_json_payload_fails_in_the_caller() -> None:
    from rgmanager.cluster.corosync import CorosyncCluster

    c = CorosyncCluster("node1", {1: "node1"})
    with pytest.raises(TypeError):
        c.broadcast(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        c.broadcast({"nan": float("nan")})
