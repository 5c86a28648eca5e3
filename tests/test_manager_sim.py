"""Three managers on the in-process `sim` cluster, with real agents.

Each node's resources live in its own directory (HA_RSCTMP), so "where is
the service really running" is answered by the real LSB script's files. The
sim backend is the legitimate stand-in for several hosts in one process.

Fencing is on, as in the daemon: every node has a ``<fence>`` method with
the recording test agent (tests/fence_agents/fence_record, a real process
run by the real Fencer and executor), so a lost owner's services move once
it has been fenced. ``crash`` really stops a node (the sim's power-off
kills its manager as SIGKILL would and wipes what its resources left). The
mock power switch (a fenced node is switched off) is attached only where a
test asks for it (``power=True``, tests/test_manager_fencing.py): here a
partitioned minority node is fenced by record only, so that it can rejoin
when the partition heals, which is what those tests are about.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rgmanager.agents.discovery import load_rules
from rgmanager.cluster.sim import ProgramRunner, SimNetwork
from rgmanager.executor import run_action, run_program
from rgmanager.fence import Fencer
from rgmanager.loader import Loaded, load
from rgmanager.manager import Manager, ReloadRefused
from rgmanager.planner import Reply
from rgmanager.planner.invariants import check_table
from rgmanager.treeops import Runner

from .manager_helpers import Fencing, cluster_conf, script, starts, wait_for, write_lsb

RULES = load_rules()
NODES = ("node1", "node2", "node3")


#: Seconds between fencing rounds in these tests (5 s in production).
ROUND_PAUSE = 0.2


class Cluster3:
    def __init__(self, tmp: Path, rm_body: str, votes: dict[str, int] | None = None, *,
                 fencing: Fencing | None = None, power: bool = False,
                 warn_interval: float = 60.0, runner: Runner = run_action,
                 fence_inner: Mapping[str, ProgramRunner] | None = None) -> None:
        self.tmp = tmp
        self.fencing = fencing or Fencing(tmp / "fence.log")
        conf = tmp / "cluster.conf"
        conf.write_text(cluster_conf(rm_body, nodes=3, fencing=self.fencing))
        self.loaded: Loaded = load(conf, RULES)
        self.net = SimNetwork(NODES, votes=votes)
        self.power = power  # fenced nodes are switched off by the sim's mock switch
        self.warn_interval = warn_interval
        self.runner = runner  # resource agents (tests wrap run_action to time starts)
        self.fence_inner = dict(fence_inner or {})  # per node: what runs its fence agents
        #: settle() also waits for fencing in progress (off where a fence never ends).
        self.wait_fence = True
        self._mlock = threading.Lock()  # managers: the power switch pops from a fence thread
        self.managers: dict[str, Manager] = {}
        for n in NODES:
            self.net.on_power_off(n, partial(self._switched_off, n))
            self.boot(n)
        self.settle()

    def _switched_off(self, node: str) -> None:
        """The sim's power-off of ``node``: its manager dies as SIGKILL, and a
        machine that is off runs nothing."""
        with self._mlock:
            m = self.managers.pop(node, None)
        if m is not None:
            m.kill()
        for on in self.dir(node).glob("*.on"):
            on.unlink(missing_ok=True)

    def live(self) -> list[Manager]:
        with self._mlock:
            return list(self.managers.values())

    def dir(self, node: str) -> Path:
        d = self.tmp / node
        d.mkdir(exist_ok=True)
        return d

    def fencer(self, node: str) -> partial[Fencer]:
        """How ``node``'s manager builds its Fencer (through the mock switch if ``power``)."""
        inner = self.fence_inner.get(node)
        runner = self.net.fence_runner(node, inner) if self.power else inner
        return partial(Fencer, runner=runner or run_program, round_pause=ROUND_PAUSE,
                       warn_interval=self.warn_interval)

    def boot(self, node: str, loaded: Loaded | None = None) -> Manager:
        m = Manager(loaded or self.loaded, self.net.node(node), monitor=False, runner=self.runner,
                    extra_env={"HA_RSCTMP": str(self.dir(node))}, fencer=self.fencer(node))
        with self._mlock:
            self.managers[node] = m
        m.start()
        return m

    def fencing_now(self) -> bool:
        """Some manager is fencing (or has fenced and not yet seen it delivered)."""
        return self.wait_fence and any(m.fence.fencing() for m in self.live())

    def settle(self, rounds: int = 200, timeout: float = 60.0) -> None:
        """Deliver until nothing is queued, nothing runs and (``wait_fence``) no
        fence is in progress; then check the invariants."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.net.run_until_idle()
            for m in self.live():
                assert m.wait_quiet(30)
            if self.net.pending() == 0:
                if not self.fencing_now():
                    self.check()
                    return
                wait_for(lambda: self.net.pending() > 0 or not self.fencing_now(),
                         max(deadline - time.monotonic(), 0), 0.01)
        raise AssertionError("cluster did not settle")

    def check(self) -> None:
        """The planner's rules, on the real managers at every quiet point: each
        synced table keeps them, the members of one group agree, and no
        service really runs on two live nodes."""
        groups: dict[tuple[str, ...], dict[str, object]] = {}
        with self._mlock:
            managers = dict(self.managers)
        for name, m in managers.items():
            if not m.synced or m.held_for is not None:
                continue  # waiting for the table or a config version: behind by design
            bad = check_table(m.model, m.table, m.membership)
            assert not bad, f"{name}: {bad}"
            groups.setdefault(m.membership.members, {})[name] = m.table.to_json()["services"]
        for members, tables in groups.items():
            first = next(iter(tables.values()))
            assert all(t == first for t in tables.values()), f"{members} disagree: {tables}"
        for service in self.loaded.forest.services:
            name = service.name.split(":", 1)[1]
            live = [n for n in self.running_on(name) if n in managers]
            assert len(live) <= 1, f"{service.name} runs on {live}"

    def crash(self, node: str) -> None:
        """Power ``node`` off (the sim kills its manager and wipes its resources,
        see ``_switched_off``) and settle: the survivors fence it and recover."""
        assert node in self.managers
        self.net.crash(node)
        self.settle()

    def restart(self, node: str) -> None:
        self.net.restart(node)
        self.boot(node)
        self.settle()

    def table(self, via: str = "") -> dict[str, tuple[str, str | None]]:
        m = self.managers[via] if via else next(iter(self.managers.values()))
        return {s["name"]: (s["state"], s["owner"]) for s in m.status()["services"]}

    def fail(self, service: str) -> None:
        """Break the service's resource on its owner and let the owner notice."""
        owner = self.table()[service][1]
        assert owner is not None
        name = service.split(":")[1]
        (self.dir(owner) / f"{name}.on").unlink()
        self.managers[owner].check_now(service)
        self.settle()

    def running_on(self, name: str) -> list[str]:
        return [n for n in NODES if (self.dir(n) / f"{name}.on").exists()]

    def close(self) -> None:
        for m in self.live():
            m.kill()
        self.net.close()


class Make:
    """Builds three-node clusters in one test directory (the ``make`` fixture)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lsb = write_lsb(tmp)
        self.made: list[Cluster3] = []

    def __call__(self, services: str, votes: dict[str, int] | None = None,
                 **options: Any) -> Cluster3:
        c = Cluster3(self.tmp, services.replace("LSB", str(self.lsb)), votes, **options)
        self.made.append(c)
        return c


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    build = Make(tmp_path)
    yield build
    for c in build.made:
        c.close()


def svc(name: str, lsb: Path, attrs: str = "") -> str:
    return f'<service name="{name}" {attrs}>{script(name, lsb)}</service>'


DOMAIN = """<failoverdomains>
  <failoverdomain name="d" ordered="1" restricted="{restricted}" nofailback="{nofailback}">
    <failoverdomainnode name="node3" priority="1"/>
    <failoverdomainnode name="node2" priority="2"/>
  </failoverdomain>
</failoverdomains>"""


def test_all_managers_agree_and_failover_on_node_down(make: Make, tmp_path: Path) -> None:
    c = make(svc("web", make.lsb))
    tables = {n: c.table(n) for n in NODES}
    assert tables["node1"] == tables["node2"] == tables["node3"]
    assert c.table()["service:web"] == ("started", "node1")
    assert c.running_on("web") == ["node1"]
    c.crash("node1")
    assert c.table()["service:web"] == ("started", "node2")
    assert "node2" in c.running_on("web")


def test_max_restarts_then_relocate(make: Make) -> None:
    c = make(svc("web", make.lsb, 'recovery="restart" max_restarts="2" '
                 'restart_expire_time="300"'))
    assert c.table()["service:web"] == ("started", "node1")
    for expected in (2, 3):
        c.fail("service:web")
        assert c.table()["service:web"] == ("started", "node1")
        assert starts(c.dir("node1"), "web") == expected
    c.fail("service:web")  # third failure within the window: relocate
    assert c.table()["service:web"] == ("started", "node2")
    assert c.running_on("web") == ["node2"]
    assert (c.dir("node1") / "web.log").read_text().split()[-1] == "stop"


def test_relocate_policy_moves_to_next_node(make: Make) -> None:
    c = make(svc("web", make.lsb, 'recovery="relocate"'))
    c.fail("service:web")
    assert c.table()["service:web"] == ("started", "node2")


def test_ordered_domain_failover_and_failback(make: Make) -> None:
    c = make(DOMAIN.format(restricted=0, nofailback=0) + svc("web", make.lsb, 'domain="d"'))
    assert c.table()["service:web"] == ("started", "node3")
    c.crash("node3")
    assert c.table()["service:web"] == ("started", "node2")
    c.restart("node3")  # the preferred node returns: fail back
    assert c.table()["service:web"] == ("started", "node3")
    assert c.running_on("web") == ["node3"]
    assert c.table("node3") == c.table("node1")


def test_nofailback_stays_put(make: Make) -> None:
    c = make(DOMAIN.format(restricted=0, nofailback=1) + svc("web", make.lsb, 'domain="d"'))
    c.crash("node3")
    assert c.table()["service:web"] == ("started", "node2")
    c.restart("node3")
    assert c.table()["service:web"] == ("started", "node2")


# node1 carries 3 of 5 votes so that it stays quorate alone.
HEAVY = {"node1": 3, "node2": 1, "node3": 1}


def test_restricted_domain_without_members_stays_stopped(make: Make) -> None:
    c = make(DOMAIN.format(restricted=1, nofailback=0) + svc("web", make.lsb, 'domain="d"'),
             HEAVY)
    c.crash("node3")
    assert c.table()["service:web"] == ("started", "node2")
    c.crash("node2")  # no member of the restricted domain left; node1 may not run it
    assert c.table()["service:web"] == ("stopped", None)
    assert "node1" not in c.running_on("web")
    c.restart("node2")
    assert c.table()["service:web"] == ("started", "node2")


def test_unrestricted_domain_uses_outsider_when_members_are_down(make: Make) -> None:
    c = make(DOMAIN.format(restricted=0, nofailback=0) + svc("web", make.lsb, 'domain="d"'),
             HEAVY)
    c.crash("node3")
    c.crash("node2")
    assert c.table()["service:web"] == ("started", "node1")


def test_relocate_request_and_exclusive(make: Make) -> None:
    c = make(svc("web", make.lsb) + svc("solo", make.lsb, 'exclusive="1"'))
    t = c.table()
    # solo (placed first, by name) takes node1; web may not share its node
    assert t["service:solo"] == ("started", "node1")
    assert t["service:web"] == ("started", "node2")
    m = c.managers["node1"]
    import threading
    box: list[Reply] = []
    th = threading.Thread(target=lambda: box.append(m.request("relocate", "web", "node3")))
    th.start()
    while th.is_alive():
        c.settle()
        th.join(0.05)
    assert box[0].code == 0
    assert c.table()["service:web"] == ("started", "node3")
    assert c.running_on("web") == ["node3"]
    box.clear()
    th = threading.Thread(target=lambda: box.append(m.request("relocate", "web", "node1")))
    th.start()
    while th.is_alive():
        c.settle()
        th.join(0.05)
    # node1 runs the exclusive service: refused with EDEPEND (docs/rgmanager.md §5)
    assert box[0].code == -7


def test_partition_minority_loses_quorum_and_stops(make: Make) -> None:
    c = make(svc("web", make.lsb))
    assert c.running_on("web") == ["node1"]
    c.net.partition(["node1"], ["node2", "node3"])
    c.settle()
    assert c.table("node2")["service:web"] == ("started", "node2")
    assert c.managers["node1"].wait_quiet(10)
    assert "node1" not in c.running_on("web")  # emergency stop on quorum loss


def test_partition_heal_converges(make: Make) -> None:
    c = make(svc("web", make.lsb) + svc("db", make.lsb))
    c.net.partition(["node1"], ["node2", "node3"])
    c.settle()
    assert c.managers["node1"].wait_quiet(10)
    c.net.heal()
    c.settle()
    tables = [c.table(n) for n in NODES]
    assert tables[0] == tables[1] == tables[2]
    for name in ("web", "db"):
        assert tables[0][f"service:{name}"][0] == "started"
        assert c.running_on(name) == [tables[0][f"service:{name}"][1]]


def test_minority_never_restarts_what_it_stopped(make: Make) -> None:
    """The split brain the model checker found: node1, cut off without quorum,
    stopped web; it must not later take its own stale table for the
    cluster's (the claim timer) and restart web on a status check while
    node2 runs it."""
    c = make(svc("web", make.lsb))
    m1 = c.managers["node1"]
    m1.claim_after = 0.05
    c.net.partition(["node1"], ["node2", "node3"])
    c.settle()
    assert m1.wait_quiet(10)
    assert c.running_on("web") == ["node2"]
    assert wait_for(lambda: m1.claim_timer is not None and not m1.claim_timer.is_alive(), 5)
    c.settle()
    assert not m1.synced  # no claim without quorum
    m1.check_now("service:web")
    c.settle()
    assert m1.wait_quiet(10)
    assert c.running_on("web") == ["node2"]
    assert m1.request("enable", "db").code == -9  # EQUORUM, answered at once
    c.net.heal()
    c.settle()
    assert c.table("node1") == c.table("node2")
    assert c.running_on("web") == ["node2"]


def _settled(c: Cluster3) -> bool:
    c.settle()
    return True


def test_whole_cluster_loses_quorum_then_claims_a_clean_table(make: Make) -> None:
    """Every member loses quorum (three singletons) and stops everything; once
    two meet again, the lowest claims its table, which says nothing runs, and
    the services are placed again, each on one node."""
    c = make(svc("web", make.lsb) + svc("db", make.lsb))
    for m in c.managers.values():
        m.claim_after = 0.05
    c.net.partition(["node1"], ["node2"], ["node3"])
    c.settle()
    for m in c.managers.values():
        assert m.wait_quiet(10)
    assert c.running_on("web") == [] and c.running_on("db") == []
    c.net.partition(["node2", "node3"], ["node1"])
    assert wait_for(lambda: _settled(c) and c.managers["node2"].synced, 10)
    c.settle()
    t = c.table("node2")
    assert t == c.table("node3")
    for name in ("web", "db"):
        assert t[f"service:{name}"][0] == "started"
        assert c.running_on(name) == [t[f"service:{name}"][1]]
        assert t[f"service:{name}"][1] in ("node2", "node3")


def test_cluster_lost_stops_services_at_once_and_rejoins_fresh(
        make: Make, caplog: pytest.LogCaptureFixture) -> None:
    """corosync dies under the owner: it stops what it runs at once (CRIT), the
    others take over; when the channel is back it rejoins as a fresh member
    and receives the table."""
    c = make(svc("web", make.lsb))
    owner = c.table()["service:web"][1]
    assert owner is not None and c.running_on("web") == [owner]
    m = c.managers[owner]
    with caplog.at_level("CRITICAL", logger="rgmanager.manager"):
        c.net.lose_channel(owner)
        c.settle()
    assert m.wait_quiet(10)
    assert any(r.levelname == "CRITICAL" and "lost the cluster" in r.getMessage()
               for r in caplog.records)
    assert owner not in c.running_on("web")
    assert not m.synced and m.membership.members == () and not m.membership.quorate
    others = [n for n in NODES if n != owner]
    assert c.table(others[0])["service:web"][0] == "started"
    assert c.running_on("web") == [c.table(others[0])["service:web"][1]]
    c.net.restore_channel(owner)
    c.settle()
    assert m.synced and owner in m.membership.members
    assert c.table(owner) == c.table(others[0])
    assert len(c.running_on("web")) == 1


def test_status_tells_online_from_rgmanager(make: Make) -> None:
    """A node whose rgmanager left is online but not rgmanager; a node whose
    channel is gone is neither (clustat's Online and rgmanager columns)."""
    c = make(svc("web", make.lsb))
    c.managers.pop("node3").shutdown(stop_services=True)
    c.settle()
    c.net.lose_channel("node2")
    c.settle()
    members = {n["name"]: n for n in c.managers["node1"].status()["members"]}
    assert (members["node3"]["online"], members["node3"]["rgmanager"]) == (True, False)
    assert (members["node2"]["online"], members["node2"]["rgmanager"]) == (False, False)
    assert (members["node1"]["online"], members["node1"]["rgmanager"]) == (True, True)
    assert members["node1"]["local"] and not members["node3"]["local"]


def _in_thread(c: Cluster3, fn: Callable[[], object]) -> list[object]:
    """Run a blocking call on a thread while the cluster keeps delivering."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except Exception as err:  # handed to the test
            box.append(err)

    th = threading.Thread(target=run)
    th.start()
    while th.is_alive():
        c.settle()
        th.join(0.05)
    c.settle()
    return box


def test_reload_switches_every_node_at_the_delivery(make: Make, tmp_path: Path) -> None:
    """Node1 loads config 2 and broadcasts it; the others have not loaded it
    yet: they hold their deliveries (planning nothing under another model)
    and ask for their file; once they have it they switch at the held point.
    Then every node runs version 2 and agrees; the added service runs once."""
    c = make(svc("web", make.lsb))
    conf2 = tmp_path / "cluster2.conf"
    conf2.write_text(cluster_conf(svc("web", make.lsb) + svc("extra", make.lsb), nodes=3)
                     .replace('config_version="1"', 'config_version="2"'))
    needed: dict[str, int] = {}

    def asker(name: str) -> Callable[[int], None]:
        def ask(version: int) -> None:
            needed[name] = version
        return ask

    for name, m in c.managers.items():
        m.on_config_needed = asker(name)
    done = _in_thread(c, lambda: c.managers["node1"].reload(load(conf2, RULES)))
    assert isinstance(done[0], list) and "added service:extra" in done[0]
    assert needed == {"node2": 2, "node3": 2}
    assert [c.managers[n].held_for for n in NODES] == [None, 2, 2]
    assert c.managers["node2"].status()["cluster"]["config_version"] == 1
    for n in ("node2", "node3"):
        _in_thread(c, partial(c.managers[n].reload, load(conf2, RULES)))
    assert [c.managers[n].held_for for n in NODES] == [None, None, None]
    assert {c.managers[n].status()["cluster"]["config_version"] for n in NODES} == {2}
    tables = [c.table(n) for n in NODES]
    assert tables[0] == tables[1] == tables[2]
    assert tables[0]["service:extra"][0] == "started"
    assert c.running_on("extra") == [tables[0]["service:extra"][1]]


def test_older_or_equal_config_version_is_refused(make: Make,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    c = make(svc("web", make.lsb))
    m = c.managers["node2"]
    assert m.reload(c.loaded) == ["config_version 1 already in force"]
    with caplog.at_level("WARNING", logger="rgmanager.manager"):
        c.net.node("node3").broadcast({"kind": "config", "version": 1})
        c.settle()
    assert sum("config_version 1 from node3 refused" in r.getMessage()
               for r in caplog.records) == 3  # logged by every member
    assert all(c.managers[n].held_for is None for n in NODES)
    older = c.tmp / "older.conf"
    older.write_text((c.tmp / "cluster.conf").read_text()
                     .replace('config_version="1"', 'config_version="0"'))
    with pytest.raises(ReloadRefused):
        m.reload(load(older, RULES))


def test_channel_back_before_the_stops_finish(make: Make) -> None:
    """corosync comes back at once: the rejoin waits for the stops of the
    lost services, then the node takes the table like any newcomer."""
    c = make(svc("web", make.lsb) + svc("db", make.lsb))
    owners = {n: c.table()[f"service:{n}"][1] for n in ("web", "db")}
    lost = owners["web"]
    assert lost is not None
    c.net.lose_channel(lost)
    c.net.restore_channel(lost)
    c.settle()
    tables = [c.table(n) for n in NODES]
    assert tables[0] == tables[1] == tables[2]
    for name in ("web", "db"):
        state, owner = tables[0][f"service:{name}"]
        assert state == "started" and c.running_on(name) == [owner]
    assert c.managers[lost].synced and c.managers[lost].held_for is None


def _reload_all(c: Cluster3, new: Path, nodes: Sequence[str]) -> None:
    for n in nodes:
        _in_thread(c, partial(c.managers[n].reload, load(new, RULES)))


def _conf_v2(make: Make, tmp_path: Path) -> Path:
    conf2 = tmp_path / "cluster2.conf"
    conf2.write_text(cluster_conf(svc("web", make.lsb) + svc("extra", make.lsb), nodes=3)
                     .replace('config_version="1"', 'config_version="2"'))
    return conf2


def test_newcomer_with_an_older_config_holds_until_it_has_the_clusters(
        make: Make, tmp_path: Path) -> None:
    c = make(svc("web", make.lsb))
    conf2 = _conf_v2(make, tmp_path)
    c.managers.pop("node3").shutdown(stop_services=True)
    c.settle()
    _reload_all(c, conf2, ["node1", "node2"])
    m3 = Manager(c.loaded, c.net.node("node3"), monitor=False,  # still version 1
                 extra_env={"HA_RSCTMP": str(c.dir("node3"))})
    needed: list[int] = []
    m3.on_config_needed = needed.append
    c.managers["node3"] = m3
    m3.start()
    c.settle()
    assert needed == [2] and m3.held_for == 2  # the table came under version 2
    _reload_all(c, conf2, ["node3"])
    assert m3.synced and m3.held_for is None
    assert {c.managers[n].status()["cluster"]["config_version"] for n in NODES} == {2}
    assert c.table("node1") == c.table("node2") == c.table("node3")


def test_newcomer_with_a_newer_config_brings_the_cluster_to_it(
        make: Make, tmp_path: Path) -> None:
    c = make(svc("web", make.lsb))
    conf2 = _conf_v2(make, tmp_path)
    c.managers.pop("node3").shutdown(stop_services=True)
    c.settle()
    needed: dict[str, int] = {}
    for name in ("node1", "node2"):
        c.managers[name].on_config_needed = partial(needed.__setitem__, name)
    m3 = Manager(load(conf2, RULES), c.net.node("node3"), monitor=False,
                 extra_env={"HA_RSCTMP": str(c.dir("node3"))})
    c.managers["node3"] = m3
    m3.start()
    c.settle()
    assert needed == {"node1": 2, "node2": 2}  # node3 proposed its version
    assert not m3.synced
    _reload_all(c, conf2, ["node1", "node2"])
    assert all(c.managers[n].synced and c.managers[n].held_for is None for n in NODES)
    assert {c.managers[n].status()["cluster"]["config_version"] for n in NODES} == {2}
    tables = [c.table(n) for n in NODES]
    assert tables[0] == tables[1] == tables[2]
    assert tables[0]["service:extra"][0] == "started"
    assert c.running_on("extra") == [tables[0]["service:extra"][1]]


def test_nodes_joining_at_once_all_get_the_table(make: Make) -> None:
    """The 5-node chaos run (seed 11) at its cold start: node5 founded the
    group with quorum; node1..4 joined in quick succession. Only the lowest
    old member used to send the table to a newcomer, and at node2's join the
    lowest old member, node1, was still waiting for its own: nobody answered
    node2 (and node3, node4), and node1's timed claim later set an empty
    table beside node5's (double-active). Here node3 holds the table alone
    (3 of 5 votes) and node1 and node2 rejoin at once."""
    c = make(svc("web", make.lsb), {"node3": 3})
    for m in c.managers.values():
        m.claim_after = 0.05
    c.crash("node1")
    c.crash("node2")
    assert c.table("node3")["service:web"] == ("started", "node3")
    for n in ("node1", "node2"):
        c.net.restart(n)
        c.boot(n)
    c.settle()
    assert wait_for(lambda: _settled(c) and all(m.synced for m in c.live()), 5)
    assert c.table("node1") == c.table("node2") == c.table("node3")
    assert c.table("node1")["service:web"] == ("started", "node3")
    assert c.running_on("web") == ["node3"]
