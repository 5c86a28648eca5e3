"""Failover on a real three-node (and two-node) corosync cluster, with fencing.

Every test builds a lab (network namespaces on a bridge, one corosync and one
rgmanager per node; see ``tests/cluster_lab.py``) and tears it down even when
it fails.  Nodes are fenced by ``fence_netns`` - the lab's power switch,
which SIGKILLs every process of a node's namespace - followed in the same
method by ``fence_record``, whose record is therefore written once the node
is certainly off.  Services run a witness LSB script that appends
``start|stop SERVICE NODE TIME`` to a log every node shares, so "fenced
before started elsewhere" is a comparison of two timestamps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster_lab import (
    CorosyncLab,
    RgmCluster,
    lab_factory,
    ordered_domain,
    probe,
    witness_service,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def labs() -> Iterator[Callable[..., CorosyncLab]]:
    """``make(n, **kw)``: started labs whose nodes see the lab's namespaces
    (fence_netns needs them); all torn down after the test, pass or fail."""
    reason = probe()
    if reason:
        pytest.skip(reason)
    make, close_all = lab_factory()

    def make_visible(n: int = 3, **kw: Any) -> CorosyncLab:
        return make(n, show_netns=True, **kw)

    try:
        yield make_visible
    finally:
        close_all()


def domains(*specs: tuple[str, tuple[int, ...], bool]) -> str:
    return "<failoverdomains>" + "".join(
        ordered_domain(name, order, nofailback=nofb) for name, order, nofb in specs
    ) + "</failoverdomains>"


def cluster(labs: Callable[..., CorosyncLab], body: str, n: int = 3, *,
            first_up: int | None = None, **conf: Any) -> RgmCluster:
    """A started lab with every daemon running; with ``first_up`` that node's
    daemon alone first, until it holds the table, so the initial placement
    does not depend on which daemon formed the group."""
    c = RgmCluster(labs(n), body, **conf)
    if first_up is not None:
        c.start([first_up])
        c.wait(lambda: c[first_up].status().get("services"), f"node{first_up} up alone")
    c.start([i for i in c.daemons if i != first_up])
    return c


def fenced(c: RgmCluster, node: int) -> list[float]:
    """When ``node`` was certainly off, for each time it was fenced."""
    return [t for t, args in c.fences() if args.get("nodename") == f"node{node}"]


def first(c: RgmCluster, action: str, service: str, node: int,
          after: float = 0.0) -> float | None:
    for act, svc, where, t in c.events():
        if (act, svc, where) == (action, service, f"node{node}") and t > after:
            return t
    return None


def assert_fenced_then_started(c: RgmCluster, victim: int, service: str, heir: int,
                               since: float) -> None:
    """``victim`` fenced exactly once since ``since``, and ``service`` started on
    ``heir`` after that, and nowhere else meanwhile."""
    fences = [t for t in fenced(c, victim) if t > since]
    assert len(fences) == 1, c.logs()
    start = first(c, "start", service, heir, since)
    assert start is not None and start > fences[0], c.logs()
    others = [e for e in c.events() if e[0] == "start" and e[1] == service
              and e[3] > since and e[2] != f"node{heir}"]
    assert not others, c.logs()


def fenced_by(c: RgmCluster, victim: int) -> list[int]:
    """The nodes whose daemon ran fencing for ``victim``."""
    return [i for i, d in c.daemons.items() if f"fencing node{victim}: started" in d.text()]


def no_tracebacks(c: RgmCluster) -> None:
    for d in c.daemons.values():
        assert "Traceback" not in d.text(), c.logs()


# ------------------------------------------------------------------ node loss

def test_member_owner_killed_is_fenced_then_its_service_moves_on(
        labs: Callable[..., CorosyncLab]) -> None:
    """web prefers node2, then node3: node2 dies (every process of it); the
    coordinator node1 fences it; web starts on node3, after the fence."""
    body = domains(("d", (2, 3, 1), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, first_up=2)
    c.wait_settled([1, 2, 3], {"web": 2})
    since = time.time()
    c.lab.kill_node(2)
    c.wait(lambda: c.running("web") == [3], "web running on node3")
    assert_fenced_then_started(c, 2, "web", 3, since)
    assert fenced_by(c, 2) == [1], c.logs()  # the coordinator, and only it
    c.wait_settled([1, 3], {"web": 3})
    no_tracebacks(c)


def test_coordinator_killed_then_back_fails_back_only_without_nofailback(
        labs: Callable[..., CorosyncLab]) -> None:
    """Both services prefer node1, the coordinator (lowest id); node1 dies; node2,
    the next coordinator, fences it and both start on node2.  node1 boots
    again: web (ordered, failback) returns to it, db (nofailback) stays."""
    body = (domains(("back", (1, 2, 3), False), ("stay", (1, 2, 3), True))
            + witness_service("web", "{lsb}", "back") + witness_service("db", "{lsb}", "stay"))
    c = cluster(labs, body, first_up=1)
    c.wait_settled([1, 2, 3], {"web": 1, "db": 1})
    since = time.time()
    c.lab.kill_node(1)
    c.wait(lambda: c.running("web") == [2] and c.running("db") == [2],
           "web and db running on node2")
    assert_fenced_then_started(c, 1, "web", 2, since)
    assert_fenced_then_started(c, 1, "db", 2, since)
    assert fenced_by(c, 1) == [2], c.logs()  # the next coordinator
    c.wait_settled([2, 3], {"web": 2, "db": 2})
    back = time.time()
    c.lab.start_node(1)
    c.lab.wait_quorate([1, 2, 3], 3)  # rgmanager once corosync is in the ring again
    c[1].start()
    c.wait_settled([1, 2, 3], {"web": 1, "db": 2})
    stop, start = first(c, "stop", "web", 2, back), first(c, "start", "web", 1, back)
    assert stop is not None and start is not None and stop < start, c.logs()
    assert first(c, "stop", "db", 2, back) is None, c.logs()
    assert not fenced(c, 1)[1:], c.logs()  # a clean return is not fenced again
    no_tracebacks(c)


def test_partition_lone_node_stops_its_services_and_the_pair_fences_it(
        labs: Callable[..., CorosyncLab]) -> None:
    """node1's link is cut: alone it loses quorum and stops web; node2 and node3
    stay quorate, fence node1 (its device has a 3 s delay: time enough to see
    the lone node's own stop first) and start web on node2."""
    body = domains(("d", (1, 2, 3), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, first_up=1, fence_delay={1: 3})
    c.wait_settled([1, 2, 3], {"web": 1})
    since = time.time()
    c.lab.cut(1)
    stop = c.wait(lambda: first(c, "stop", "web", 1, since), "node1 stopping web alone")
    c.wait(lambda: c.running("web") == [2], "web running on node2")
    assert_fenced_then_started(c, 1, "web", 2, since)
    assert stop < fenced(c, 1)[-1], c.logs()
    c.wait_settled([2, 3], {"web": 2})
    no_tracebacks(c)


def test_two_node_split_with_a_fence_delay_leaves_one_survivor(
        labs: Callable[..., CorosyncLab]) -> None:
    """two_node: after a split both halves stay quorate and fence each other;
    node2's device waits 3 s, so node2 fences node1 first and runs web alone."""
    body = domains(("d", (1, 2), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, n=2, first_up=1, fence_delay={2: 3})
    c.wait_settled([1, 2], {"web": 1})
    since = time.time()
    c.lab.cut(1)
    c.wait(lambda: c.running("web") == [2], "web running on node2")
    c.wait(lambda: not c.lab.pids(1), "node1 switched off")
    # node1 is off, so nothing can fence node2 any more: one survivor.
    assert c[2].alive() and c.lab.corosync_running(2)
    assert fenced(c, 2) == [], c.logs()
    assert_fenced_then_started(c, 1, "web", 2, since)
    assert c.running("web") == [2]
    no_tracebacks(c)


# ---------------------------------------------------------------- clusvcadm

def views(c: RgmCluster, nodes: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    return {i: {s["name"]: s for s in c[i].status().get("services", [])} for i in nodes}


def test_clusvcadm_relocate_enable_disable_freeze_from_any_node(
        labs: Callable[..., CorosyncLab]) -> None:
    body = witness_service("web", "{lsb}")
    c = cluster(labs, body, first_up=1)
    c.wait_settled([1, 2, 3], {"web": 1})
    r = c[2].clusvcadm("-r", "web", "-m", "node3")  # asked on node2, web on node1
    assert r.returncode == 0, (r.stdout, r.stderr)
    c.wait_settled([1, 2, 3], {"web": 3})
    r = c[1].clusvcadm("-d", "web")
    assert r.returncode == 0, (r.stdout, r.stderr)
    c.wait(lambda: all(v["service:web"]["state"] == "disabled"
                       for v in views(c, [1, 2, 3]).values()), "web disabled everywhere")
    assert c.running("web") == []
    r = c[3].clusvcadm("-e", "web", "-m", "node2")
    assert r.returncode == 0, (r.stdout, r.stderr)
    c.wait_settled([1, 2, 3], {"web": 2})
    r = c[1].clusvcadm("-Z", "web")
    assert r.returncode == 0, (r.stdout, r.stderr)
    c.wait(lambda: all(v["service:web"]["frozen"] for v in views(c, [1, 2, 3]).values()),
           "web frozen on every node")
    r = c[3].clusvcadm("-U", "web")
    assert r.returncode == 0, (r.stdout, r.stderr)
    c.wait(lambda: not any(v["service:web"]["frozen"] for v in views(c, [1, 2, 3]).values()),
           "web thawed on every node")
    c.wait_settled([1, 2, 3], {"web": 2})
    assert fenced(c, 1) == fenced(c, 2) == fenced(c, 3) == []
    no_tracebacks(c)


# --------------------------------------------------- one of the two processes

def test_rgmanager_killed_alone_node_is_fenced_then_its_service_recovered(
        labs: Callable[..., CorosyncLab]) -> None:
    """rgmanager on node3 (web's owner) is SIGKILLed, corosync stays: every node
    sees node3 online without rgmanager and web ``recovering`` awaiting node3's
    fence (its device waits 3 s: time to look); then node3 is fenced and web
    starts on node1."""
    body = domains(("d", (3, 1, 2), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, first_up=3, fence_delay={3: 3})
    c.wait_settled([1, 2, 3], {"web": 3})
    since = time.time()
    c[3].kill()

    def awaiting_fence(i: int) -> bool:
        view = c[i].status()
        members = {m["name"]: m for m in view.get("members", [])}
        web = {s["name"]: s for s in view.get("services", [])}.get("service:web", {})
        return (members.get("node3", {}).get("online") is True
                and members["node3"]["rgmanager"] is False
                and web.get("state") == "recovering"
                and web.get("reason") == "awaiting fence of node3")

    c.wait(lambda: awaiting_fence(1) and awaiting_fence(2),
           "node3 online without rgmanager, web awaiting its fence, on node1 and node2")
    assert fenced(c, 3) == [] and c.running("web") == [3]  # nothing moved yet
    c.wait(lambda: c.running("web") == [1], "web running on node1")
    assert_fenced_then_started(c, 3, "web", 1, since)
    c.wait_settled([1, 2], {"web": 1})
    no_tracebacks(c)


def test_corosync_killed_under_the_owner_stops_at_once_then_fenced_and_moved(
        labs: Callable[..., CorosyncLab]) -> None:
    """corosync on node2 (web's owner) dies, rgmanager stays: it stops web at
    once (before the others even notice); node1 fences node2; web on node3."""
    body = domains(("d", (2, 3, 1), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, first_up=2)
    c.wait_settled([1, 2, 3], {"web": 2})
    since = time.time()
    c.lab.kill_corosync(2)
    stop = c.wait(lambda: first(c, "stop", "web", 2, since), "node2 stopping web", timeout=10)
    c.wait(lambda: c.running("web") == [3], "web running on node3")
    assert_fenced_then_started(c, 2, "web", 3, since)
    assert stop < fenced(c, 2)[-1], c.logs()
    assert "CRITICAL lost the cluster" in c[2].text(), c.logs()
    no_tracebacks(c)




def test_coordinator_dying_while_it_fences_is_replaced_by_the_next(
        labs: Callable[..., CorosyncLab]) -> None:
    """Five nodes.  web's owner node2 dies; the coordinator node1 starts fencing
    it (node2's device waits 3 s) and dies during that wait.  node3, the next
    coordinator, fences node2 itself at that membership change - no timeout -
    and web starts on node3 after that fence, the only one node2 got."""
    body = domains(("d", (2, 3, 4, 5, 1), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, n=5, first_up=2, fence_delay={2: 3})
    c.wait_settled([1, 2, 3, 4, 5], {"web": 2})
    since = time.time()
    c.lab.kill_node(2)
    c.wait(lambda: "fencing node2: started" in c[1].text(), "node1 fencing node2")
    c.lab.kill_node(1)
    c.wait(lambda: c.running("web") == [3], "web running on node3")
    assert_fenced_then_started(c, 2, "web", 3, since)
    assert fenced_by(c, 2) == [1, 3], c.logs()
    c.wait_settled([3, 4, 5], {"web": 3})
    no_tracebacks(c)

@pytest.mark.skipif(not Path("/usr/sbin/fence_dummy").exists(),
                    reason="Debian's fence-agents (fence_dummy) is not installed")
def test_fence_agents_fence_dummy_found_by_name_is_driven_through_our_fencing(
        labs: Callable[..., CorosyncLab]) -> None:
    """Each node's method ends with Debian's ``fence_dummy`` (agent given by name,
    found in /usr/sbin; ``action="off"`` on the device line, its status file
    per node): the lost node's file says off, the others' still on."""
    files = {}
    body = domains(("d", (2, 3, 1), False)) + witness_service("web", "{lsb}", "d")
    lab = labs(3)
    for i in lab.nodes:
        files[i] = lab.dir / f"dummy-node{i}.status"
        files[i].write_text("on")  # fence_dummy wants no newline
    status = lab.dir / "dummy-{node}.status"
    c = RgmCluster(lab, body, extra_device=(
        "dummy", "fence_dummy", f'type="file" status_file="{status}" action="off"'))
    c.start([2])
    c.wait(lambda: c[2].status().get("services"), "node2 up alone")
    c.start([1, 3])
    c.wait_settled([1, 2, 3], {"web": 2})
    since = time.time()
    c.lab.kill_node(2)
    c.wait(lambda: c.running("web") == [3], "web running on node3")
    assert_fenced_then_started(c, 2, "web", 3, since)
    assert {i: f.read_text() for i, f in files.items()} == {1: "on", 2: "off", 3: "on"}
    assert "/usr/sbin/fence_dummy" in c[1].text(), c.logs()
    no_tracebacks(c)


# ------------------------------------------------- regressions of product bugs

def test_node_rebooted_with_corosync_and_rgmanager_together_takes_the_clusters_table(
        labs: Callable[..., CorosyncLab]) -> None:
    """node1 (web's preferred node) dies and web moves to node2; node1 boots with
    corosync and rgmanager started together, as an init system does.  The
    quorate side's table (web on node2) must win: every node agrees that web
    failed back, started once on node1, after node2's stop.  Three reboots:
    the window (rgmanager in the group before corosync merged) is not hit
    every time."""
    body = domains(("d", (1, 2, 3), False)) + witness_service("web", "{lsb}", "d")
    c = cluster(labs, body, first_up=1)
    c.wait_settled([1, 2, 3], {"web": 1})
    for _ in range(3):
        c.lab.kill_node(1)
        c.wait(lambda: c.running("web") == [2], "web running on node2")
        c.wait_settled([2, 3], {"web": 2})
        back = time.time()
        c.lab.start_node(1)
        c[1].start()  # at once, corosync is not in the ring yet
        c.wait_settled([1, 2, 3], {"web": 1}, timeout=20)
        starts = [e for e in c.events() if e[0] == "start" and e[3] > back]
        stop = first(c, "stop", "web", 2, back)
        assert [e[2] for e in starts] == ["node1"], c.logs()
        assert stop is not None and stop < starts[0][3], c.logs()
