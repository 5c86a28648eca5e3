"""The manager on the embedded single-node backend, with real agents.

Each test breaks a real resource behind the manager's back (removes the
LSB script's state file) and checks what the manager really did to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rgmanager.agents.discovery import load_rules
from rgmanager.cluster.local import LocalCluster
from rgmanager.loader import load
from rgmanager.manager import Manager
from rgmanager.status_view import ServiceView

from .manager_helpers import cluster_conf, script, starts, wait_for, write_lsb

RULES = load_rules()

MakeManager = Callable[[str], Manager]
IND = '__independent_subtree="1"'
NONCRIT = '__independent_subtree="2"'


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def lsb(tmp_path: Path) -> Path:
    return write_lsb(tmp_path)


@pytest.fixture
def manager(tmp_path: Path, state_dir: Path) -> Iterator[MakeManager]:
    made: list[Manager] = []

    def make(rm_body: str) -> Manager:
        conf = tmp_path / "cluster.conf"
        conf.write_text(cluster_conf(rm_body))
        m = Manager(load(conf, RULES), LocalCluster("node1"),
                    extra_env={"HA_RSCTMP": str(state_dir)})
        made.append(m)
        m.start()
        return m

    yield make
    for m in made:
        m.shutdown(stop_services=True)


def svc(m: Manager, name: str = "service:web") -> ServiceView:
    return next(s for s in m.status()["services"] if s["name"] == name)


def started(m: Manager, name: str = "service:web") -> bool:
    return svc(m, name)["state"] == "started" and m.wait_quiet(5)


def test_autostart_and_restart_policy(manager: MakeManager, lsb: Path, state_dir: Path) -> None:
    m = manager(f'<service name="web" recovery="restart">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    assert (state_dir / "app.on").exists() and starts(state_dir, "app") == 1
    (state_dir / "app.on").unlink()  # the resource dies behind our back
    assert wait_for(lambda: starts(state_dir, "app") == 2 and started(m))
    assert (state_dir / "app.on").exists()
    assert svc(m)["restarts"] == 1 and svc(m)["owner"] == "node1"


def test_disable_policy(manager: MakeManager, lsb: Path, state_dir: Path) -> None:
    m = manager(f'<service name="web" recovery="disable">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    (state_dir / "app.on").unlink()
    assert wait_for(lambda: svc(m)["state"] == "disabled")
    assert (state_dir / "app.log").read_text().split()[-1] == "stop"  # it was stopped cleanly


def test_restart_disable_after_threshold(manager: MakeManager, lsb: Path,
                                         state_dir: Path) -> None:
    m = manager(f'<service name="web" recovery="restart-disable" max_restarts="1" '
                f'restart_expire_time="300">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    (state_dir / "app.on").unlink()
    assert wait_for(lambda: starts(state_dir, "app") == 2 and started(m))
    (state_dir / "app.on").unlink()
    assert wait_for(lambda: svc(m)["state"] == "disabled")
    assert starts(state_dir, "app") == 2


def test_relocate_policy_single_node_restarts_locally(manager: MakeManager, lsb: Path,
                                                      state_dir: Path) -> None:
    m = manager(f'<service name="web" recovery="relocate">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    (state_dir / "app.on").unlink()
    assert wait_for(lambda: starts(state_dir, "app") == 2 and started(m))
    assert any("no other node can run it" in n for n in m.history)


def test_independent_subtree_restarts_only_itself(manager: MakeManager, lsb: Path,
                                                  state_dir: Path) -> None:
    m = manager(f'<service name="web">{script("base", lsb)}'
                + script("side", lsb, extra=IND) + "</service>")
    assert wait_for(lambda: started(m) and (state_dir / "side.on").exists())
    (state_dir / "side.on").unlink()
    assert wait_for(lambda: starts(state_dir, "side") == 2 and (state_dir / "side.on").exists())
    assert m.wait_quiet(5)
    assert starts(state_dir, "base") == 1 and (state_dir / "base.on").exists()
    assert svc(m)["state"] == "started" and svc(m)["restarts"] == 0


def test_independent_subtree_exhausted_escalates(manager: MakeManager, lsb: Path,
                                                 state_dir: Path) -> None:
    extra = '__independent_subtree="1" __max_restarts="1" __restart_expire_time="300"'
    m = manager(f'<service name="web">{script("base", lsb)}'
                f'{script("side", lsb, extra=extra)}</service>')
    assert wait_for(lambda: started(m) and (state_dir / "side.on").exists())
    (state_dir / "side.on").unlink()
    assert wait_for(lambda: starts(state_dir, "side") == 2 and (state_dir / "side.on").exists())
    (state_dir / "side.on").unlink()  # second failure: the whole service restarts
    assert wait_for(lambda: starts(state_dir, "base") == 2 and started(m))
    assert svc(m)["restarts"] == 1


def test_non_critical_failure_leaves_service_partial_then_convalesce(
        manager: MakeManager, lsb: Path, state_dir: Path) -> None:
    m = manager(f'<service name="web">{script("base", lsb)}'
                + script("extra", lsb, extra=NONCRIT) + "</service>")
    assert wait_for(lambda: started(m) and (state_dir / "extra.on").exists())
    (state_dir / "extra.on").unlink()
    assert wait_for(lambda: svc(m)["partial"] and m.wait_quiet(5))
    s = svc(m)
    assert s["state"] == "started" and s["disabled_parts"] == ["script:extra"]
    assert (state_dir / "base.on").exists() and not (state_dir / "extra.on").exists()
    assert (state_dir / "extra.log").read_text().split()[-1] == "stop"
    reply = m.request("convalesce", "web")
    assert reply.code == 0
    assert wait_for(lambda: (state_dir / "extra.on").exists() and not svc(m)["partial"])
    assert starts(state_dir, "base") == 1


def test_freeze_blocks_checks_and_unfreeze_resumes(manager: MakeManager, lsb: Path,
                                                   state_dir: Path) -> None:
    m = manager(f'<service name="web">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    assert m.request("freeze", "web").code == 0
    (state_dir / "app.on").unlink()
    assert not wait_for(lambda: starts(state_dir, "app") > 1, timeout=3)
    assert svc(m)["frozen"] and svc(m)["state"] == "started"
    assert m.request("disable", "web").code == -11  # frozen: refused
    assert m.request("unfreeze", "web").code == 0
    assert wait_for(lambda: starts(state_dir, "app") == 2 and started(m))


def test_failed_start_is_stopped_cleanly(manager: MakeManager, lsb: Path,
                                         state_dir: Path) -> None:
    (state_dir / "app.failstart").touch()
    m = manager(f'<service name="web">{script("app", lsb)}</service>')
    assert wait_for(lambda: svc(m)["state"] == "stopped" and m.wait_quiet(5))
    assert (state_dir / "app.log").read_text().split() == ["start", "stop"]
    (state_dir / "app.failstart").unlink()
    assert m.request("enable", "web").code == 0
    assert started(m)


def test_failed_stop_marks_failed_until_disabled(manager: MakeManager, lsb: Path,
                                                 state_dir: Path) -> None:
    m = manager(f'<service name="web">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    (state_dir / "app.failstop").touch()
    assert m.request("stop", "web").code == -2
    assert svc(m)["state"] == "failed"
    assert m.request("enable", "web").code == -2  # failed: must be disabled first
    (state_dir / "app.failstop").unlink()
    assert m.request("disable", "web").code == 0
    assert svc(m)["state"] == "disabled" and not (state_dir / "app.on").exists()


def test_requests_on_missing_service_and_unknown_node(manager: MakeManager, lsb: Path) -> None:
    m = manager(f'<service name="web">{script("app", lsb)}</service>')
    assert wait_for(lambda: started(m))
    assert m.request("enable", "nosuch").code == -4
    assert m.request("relocate", "web", node="node9").code == -12


def test_exclusive_and_depend(manager: MakeManager, lsb: Path, state_dir: Path) -> None:
    m = manager(f'<service name="db">{script("db", lsb)}</service>'
                f'<service name="web" depend="service:db">{script("app", lsb)}</service>'
                f'<service name="solo" exclusive="1">{script("solo", lsb)}</service>')
    assert wait_for(lambda: started(m, "service:db") and started(m, "service:web"))
    assert svc(m, "service:solo")["state"] == "stopped"  # node busy: exclusive waits
    assert starts(state_dir, "solo") == 0
    (state_dir / "db.on").unlink()  # dependency restarts: dependant stops and comes back
    assert wait_for(lambda: starts(state_dir, "app") == 2 and started(m, "service:web"))
    assert (state_dir / "app.log").read_text().split() == ["start", "stop", "start"]


def test_shutdown_stops_dependants_first(tmp_path: Path, lsb: Path, state_dir: Path) -> None:
    conf = tmp_path / "cluster.conf"
    # "a-web" sorts before "db" by name, yet must stop first only because it
    # depends on db; "z-top" depends on a-web and stops before both.
    conf.write_text(cluster_conf(
        f'<service name="db">{script("db", lsb)}</service>'
        f'<service name="a-web" depend="db">{script("web", lsb)}</service>'
        f'<service name="z-top" depend="a-web">{script("top", lsb)}</service>'))
    m = Manager(load(conf, RULES), LocalCluster("node1"),
                extra_env={"HA_RSCTMP": str(state_dir)})
    m.start()
    assert wait_for(lambda: all(s["state"] == "started" for s in m.status()["services"])
                    and m.wait_quiet(5))
    m.shutdown(stop_services=True)
    stops = [line.split()[1] for line in (state_dir / "order.log").read_text().splitlines()
             if line.startswith("stop")]
    assert stops == ["top", "web", "db"]


def test_parallel_requests_queue_instead_of_eagain(manager: MakeManager, lsb: Path,
                                                   state_dir: Path) -> None:
    """Five clients at once on one service (disable, enable, restart, ...):
    rgmanager queued them; every one is carried out, in arrival order."""
    import threading
    m = manager(f'<service name="web">{script("web", lsb)}</service>')
    assert wait_for(lambda: svc(m)["state"] == "started")
    ops = ["disable", "enable", "restart", "disable", "enable"]
    replies: dict[int, int] = {}

    def ask(i: int, op: str) -> None:
        replies[i] = m.request(op, "web", timeout=60).code

    threads = []
    for i, op in enumerate(ops):
        t = threading.Thread(target=ask, args=(i, op))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    assert sorted(replies) == list(range(5))
    # Before queuing, all but the first got -6 "Temporary failure; try again".
    assert -6 not in replies.values(), replies
    assert all(code in (0, -10, -8) for code in replies.values()), replies
    log = (state_dir / "web.log").read_text().split()
    assert log.count("stop") >= 2 and log.count("start") >= 3  # really carried out


def test_request_is_dropped_once_its_requester_gave_up(manager: MakeManager,
                                                       lsb: Path) -> None:
    """A request whose deadline passed before it was carried out is answered
    and not done (the client has gone; nobody would see it happen)."""
    from rgmanager.planner import Request, to_payload
    m = manager(f'<service name="web">{script("web", lsb)}</service>')
    assert wait_for(lambda: svc(m)["state"] == "started")
    now = m.clock()
    m.cluster.broadcast(to_payload(Request(now, "disable", "service:web", "node1", "late",
                                           deadline=now - 1)))
    assert wait_for(lambda: any("gave up" in h for h in m.history))
    assert m.wait_quiet(10)
    assert svc(m)["state"] == "started"


def test_failed_start_during_reload_goes_to_the_recovery_policy(
        tmp_path: Path, lsb: Path, state_dir: Path) -> None:
    """A changed resource whose start fails on reload is a service failure at
    once (here recovery="disable"), never reported as restarted and started."""
    conf = tmp_path / "cluster.conf"

    def body(file: Path) -> str:
        return (f'<service name="web" recovery="disable"><script name="app" file="{file}">'
                '<action name="status" depth="*" interval="1"/></script></service>')

    other = lsb.parent / "lsb-app-v2"
    other.symlink_to(lsb)
    conf.write_text(cluster_conf(body(lsb)))
    m = Manager(load(conf, RULES), LocalCluster("node1"), monitor=False,
                extra_env={"HA_RSCTMP": str(state_dir)})
    m.start()
    try:
        assert wait_for(lambda: svc(m)["state"] == "started")
        (state_dir / "app.failstart").touch()
        conf.write_text(cluster_conf(body(other)).replace('config_version="1"',
                                                          'config_version="2"'))
        done = m.reload(load(conf, RULES))
        assert any("failed" in line for line in done), done
        assert wait_for(lambda: svc(m)["state"] == "disabled")
        assert any("start during reconfiguration failed" in h for h in m.history)
    finally:
        m.shutdown(stop_services=True)
