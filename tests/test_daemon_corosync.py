"""The real daemon on the corosync backend, in a one-node lab (root, corosync).

What only a real corosync shows: the daemon joins the CPG group and runs its
service; when corosync is killed under it, the daemon stops the service at
once (logged at CRITICAL) and, when corosync is back, rejoins as a fresh
member and places the service again; a daemon started before corosync waits
for it with one log line and no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .cluster_lab import (
    PYTHON,
    REPO,
    CorosyncLab,
    clustat_json,
    lab_factory,
    probe,
    wait_for,
)
from .manager_helpers import cluster_conf, script, write_lsb

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def labs() -> Iterator[Callable[..., CorosyncLab]]:
    """``make(n)``: started n-node labs, torn down after the test (pass or fail)."""
    reason = probe()
    if reason:
        pytest.skip(reason)
    make, close_all = lab_factory()
    try:
        yield make
    finally:
        close_all()


@pytest.fixture
def lab(labs: Callable[..., CorosyncLab]) -> CorosyncLab:
    """A started one-node lab."""
    return labs(1)


def lab_conf(body: str, nodes: int, version: int = 1) -> str:
    return cluster_conf(body, nodes=nodes).replace('name="t"', 'name="rgmlab"').replace(
        'config_version="1"', f'config_version="{version}"')


class LabDaemon:
    """``rgmanager --backend corosync`` inside a lab node, its log in a file."""

    def __init__(self, lab: CorosyncLab, nodeid: int = 1, body: str | None = None) -> None:
        self.lab = lab
        self.nodeid = nodeid
        self.dir = lab.dir / f"rgm{nodeid}"
        self.state = self.dir / "state"
        self.state.mkdir(parents=True)
        self.lsb = write_lsb(self.dir)
        self.conf = self.dir / "cluster.conf"
        self.write(body if body is not None
                   else f'<service name="web">{script("web", self.lsb)}</service>')
        self.log = self.dir / "daemon.log"
        self.sock = self.dir / "rgmanager.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, body: str, version: int = 1) -> None:
        """This node's own copy of cluster.conf (each node reads its own)."""
        self.conf.write_text(lab_conf(body.replace("LSB", str(self.lsb)), self.lab.n, version))

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        with open(self.log, "wb") as out:
            self.proc = self.lab.popen(self.nodeid, [
                PYTHON, "-m", "rgmanager.cli.daemon_main", "-c", str(self.conf),
                "--backend", "corosync", "--node", f"node{self.nodeid}",
                "--socket", str(self.sock), "--lock-file", str(self.dir / "rgmanager.pid")],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "HA_RSCTMP": str(self.state),
                     "RGMANAGER_CACHE_DIR": str(self.dir / "cache"), **(extra_env or {})})

    def status(self) -> dict[str, Any]:
        """clustat --json against this node's daemon ({} if it does not answer)."""
        return clustat_json(self.sock)

    def table(self) -> dict[str, tuple[str, str | None]]:
        return {s["name"]: (s["state"], s["owner"]) for s in self.status().get("services", [])}

    def runs(self, name: str) -> bool:
        return (self.state / f"{name}.on").exists()

    def starts(self, name: str) -> int:
        log = self.state / f"{name}.log"
        return log.read_text().split().count("start") if log.exists() else 0

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return (self.state / "web.on").exists()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wait(cond: Callable[[], bool], what: str, d: LabDaemon, timeout: float = 30) -> None:
    try:
        wait_for(cond, timeout, what)
    except Exception as err:
        raise AssertionError(f"{err}\n--- daemon log ---\n{d.text()}") from None


def test_corosync_killed_under_the_daemon_stops_services_then_rejoins(
        lab: CorosyncLab) -> None:
    d = LabDaemon(lab)
    d.start()
    wait(d.running, "service started on corosync", d)
    lab.kill_corosync(1)
    wait(lambda: not d.running(), "service stopped at once", d, timeout=10)
    text = d.text()
    assert "CRITICAL lost the cluster" in text, text
    assert d.proc is not None and d.proc.poll() is None  # the daemon lives on
    lab.start_corosync(1)
    wait(d.running, "service placed again after the rejoin", d)
    assert "Traceback" not in d.text()
    assert d.stop() == 0
    assert not d.running()


def test_daemon_started_before_corosync_waits_with_one_line(
        lab: CorosyncLab) -> None:
    lab.kill_corosync(1)
    d = LabDaemon(lab)
    # systemd's notification socket (a path: abstract sockets are per netns).
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = d.dir / "notify.sock"
    notify.bind(str(notify_path))
    notify.settimeout(0.2)
    notes: list[str] = []

    def heard(prefix: str) -> bool:
        with contextlib.suppress(TimeoutError):
            while True:
                notes.append(notify.recv(4096).decode())
        return any(n.startswith(prefix) for n in notes)

    try:
        d.start({"NOTIFY_SOCKET": str(notify_path)})
        wait(lambda: "waiting for it" in d.text(), "the waiting log line", d)
        assert not d.running()
        wait(lambda: heard("STATUS=waiting for corosync"), "sd_notify STATUS while waiting", d)
        lab.start_corosync(1)
        wait(d.running, "service started once corosync is up", d)
        wait(lambda: heard("STATUS=connected to corosync"), "sd_notify STATUS connected", d)
        text = d.text()
        assert text.count("waiting for it") == 1, text
        assert "Traceback" not in text
        assert d.stop() == 0
    finally:
        notify.close()


# ------------------------------------------------------------------ three nodes

BODY = '<service name="web">{web}</service><service name="db">{db}</service>'


def three(labs: Callable[..., CorosyncLab]) -> dict[int, LabDaemon]:
    """Three daemons on a three-node lab, each with its own copy of cluster.conf,
    every service started somewhere."""
    lab = labs(3)
    daemons = {}
    for i in (1, 2, 3):
        d = LabDaemon(lab, i, "")
        d.write(BODY.format(web=script("web", d.lsb), db=script("db", d.lsb)))
        daemons[i] = d
    for d in daemons.values():
        d.start()

    def settled() -> bool:
        for d in daemons.values():
            view = d.status()
            if not view or view["stale"] or \
                    not all(m["rgmanager"] for m in view["members"]):
                return False
            if sorted((s["name"], s["state"]) for s in view["services"]) != \
                    [("service:db", "started"), ("service:web", "started")]:
                return False
        return True

    wait(settled, "three members with the table, both services started", daemons[1],
         timeout=60)
    return daemons


def run_on(daemons: dict[int, LabDaemon], name: str) -> list[int]:
    return [i for i, d in daemons.items() if d.runs(name)]


def test_three_daemons_agree_and_show_online_and_rgmanager(
        labs: Callable[..., CorosyncLab]) -> None:
    daemons = three(labs)
    views = {i: d.status() for i, d in daemons.items()}
    assert views[1]["services"] == views[2]["services"] == views[3]["services"]
    # the same members with the same Online/rgmanager flags everywhere; Local differs
    flags = [[(m["name"], m["online"], m["rgmanager"]) for m in v["members"]]
             for v in views.values()]
    assert flags[0] == flags[1] == flags[2], flags
    for i, view in views.items():
        members = {m["name"]: m for m in view["members"]}
        assert all(m["online"] and m["rgmanager"] for m in members.values()), members
        assert [n for n, m in members.items() if m["local"]] == [f"node{i}"]
        assert view["quorate"]
    for name in ("web", "db"):
        owner = daemons[1].table()[f"service:{name}"][1]
        assert owner is not None and run_on(daemons, name) == [int(owner[-1])]
    # rgmanager killed on node3, corosync stays: Online, not rgmanager
    proc = daemons[3].proc
    assert proc is not None
    proc.kill()
    proc.wait(10)

    def node3_seen_without_rgmanager() -> bool:
        members = {m["name"]: m for m in daemons[1].status().get("members", [])}
        return members.get("node3", {}).get("online") is True and \
            members["node3"]["rgmanager"] is False

    wait(node3_seen_without_rgmanager, "node3 online without rgmanager", daemons[1])
    for d in (daemons[1], daemons[2]):
        assert d.stop() == 0


def test_reload_switches_every_node_and_changes_only_what_changed(
        labs: Callable[..., CorosyncLab]) -> None:
    """config_version 2 (one more service) on every node's disk, SIGHUP on one:
    every node switches at the delivery of that version; nothing else restarts."""
    daemons = three(labs)
    before = {(i, n): d.starts(n) for i, d in daemons.items() for n in ("web", "db")}
    for d in daemons.values():
        d.write(BODY.format(web=script("web", d.lsb), db=script("db", d.lsb))
                + f'<service name="extra">{script("extra", d.lsb)}</service>', version=2)
    proc = daemons[2].proc
    assert proc is not None
    proc.send_signal(signal.SIGHUP)

    def switched() -> bool:
        views = [d.status() for d in daemons.values()]
        return all(v.get("cluster", {}).get("config_version") == 2 for v in views) and \
            all(dict((s["name"], s["state"]) for s in v["services"]).get("service:extra")
                == "started" for v in views)

    try:
        wait_for(switched, 60, "every node on config_version 2 with extra started")
    except Exception as err:
        logs = "\n".join(f"--- node{i} ---\n{d.text()}" for i, d in daemons.items())
        raise AssertionError(f"{err}\n{logs}") from None
    assert len(run_on(daemons, "extra")) == 1
    after = {(i, n): d.starts(n) for i, d in daemons.items() for n in ("web", "db")}
    assert after == before  # nothing that did not change was restarted
    tables = [d.table() for d in daemons.values()]
    assert tables[0] == tables[1] == tables[2]
    for d in daemons.values():
        assert "Traceback" not in d.text()
        assert d.stop() == 0
