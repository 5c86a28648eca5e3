"""The real daemon process driven by the real clustat and clusvcadm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .manager_helpers import cluster_conf, script, starts, wait_for, write_lsb

REPO = Path(__file__).resolve().parents[1]


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.conf = tmp / "cluster.conf"
        self.sock = tmp / "rgmanager.sock"
        self.state = tmp / "state"
        self.state.mkdir()
        self.lsb = write_lsb(tmp)
        self.lock = tmp / "rgmanager.pid"
        self.env = {**os.environ, "RGMANAGER_SOCKET": str(self.sock),
                    "RGMANAGER_LOCK": str(self.lock),
                    "HA_RSCTMP": str(self.state), "RGMANAGER_CACHE_DIR": str(tmp / "cache")}
        self.proc: subprocess.Popen[str] | None = None

    def write(self, body: str, version: int = 1) -> None:
        text = cluster_conf(body).replace('config_version="1"', f'config_version="{version}"')
        self.conf.write_text(text)

    def start(self) -> None:
        self.log = open(self.tmp / "daemon.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rgmanager.cli.daemon_main", "-c", str(self.conf)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True, cwd=REPO)

    def cli(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", f"rgmanager.cli.{tool}", *args],
                              env=self.env, capture_output=True, text=True, timeout=120)

    def services(self) -> dict[str, dict[str, Any]]:
        r = self.cli("clustat", "--json")
        if r.returncode != 0:
            return {}
        return {s["name"]: s for s in json.loads(r.stdout)["services"]}

    def state_of(self, name: str) -> str | None:
        s = self.services().get(name)
        return s["state"] if s else None

    def logtext(self) -> str:
        return (self.tmp / "daemon.log").read_text()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self.log.close()
        return rc


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def body(d: Daemon, db_extra: str = "") -> str:
    noncrit = '__independent_subtree="2"'
    return (f'<service name="web">{script("base", d.lsb)}{script("extra", d.lsb, noncrit)}'
            f'</service><service name="db">{script("db", d.lsb)}{db_extra}</service>')


@pytest.fixture
def running(daemon: Daemon) -> Daemon:
    """The daemon on ``body``, with both services started."""
    d = daemon
    d.write(body(d))
    d.start()
    assert wait_for(lambda: d.state_of("service:web") == "started"
                    and d.state_of("service:db") == "started"), d.logtext()
    return d


def test_clustat_without_a_daemon(daemon: Daemon) -> None:
    d = daemon
    r = d.cli("clustat")
    assert r.returncode == 1 and "Could not connect to resource group manager" in r.stderr


def test_daemon_starts_services_and_clustat_shows_them(running: Daemon) -> None:
    d = running
    assert oct(d.sock.stat().st_mode & 0o777) == "0o600"
    text = d.cli("clustat").stdout
    assert "Member Status: Quorate" in text
    assert any(line.split()[:3] == ["service:web", "node1", "started"]
               for line in text.splitlines()), text


def test_non_critical_part_dies_service_partial_then_convalesce(running: Daemon) -> None:
    """A non-critical part dies: the service stays started, partial, shown in clustat -l."""
    d = running
    (d.state / "extra.on").unlink()
    assert wait_for(lambda: d.services()["service:web"]["partial"]), d.logtext()
    long = d.cli("clustat", "-l", "-s", "web")
    assert "Stopped parts   : script:extra" in long.stdout and long.returncode == 0
    assert (d.state / "base.on").exists() and not (d.state / "extra.on").exists()
    r = d.cli("clusvcadm", "-c", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: not d.services()["service:web"]["partial"])
    assert (d.state / "extra.on").exists()


def test_user_requests_and_their_messages(running: Daemon) -> None:
    d = running
    r = d.cli("clusvcadm", "-d", "db")
    assert r.returncode == 0 and "disabling service:db" in r.stdout
    assert d.state_of("service:db") == "disabled" and not (d.state / "db.on").exists()
    assert d.cli("clustat", "-s", "db").returncode == 119
    r = d.cli("clusvcadm", "-e", "db")
    assert r.returncode == 0 and "service:db is now running on node1" in r.stdout
    r = d.cli("clusvcadm", "-e", "nosuch")
    assert r.returncode == 252 and "Service does not exist" in r.stdout + r.stderr
    r = d.cli("clusvcadm", "-Z", "db")
    assert r.returncode == 0
    r = d.cli("clusvcadm", "-d", "db")
    assert r.returncode == 245 and "frozen" in r.stdout + r.stderr
    assert d.cli("clusvcadm", "-U", "db").returncode == 0
    r = d.cli("clusvcadm", "-r", "db", "-m", "node7")
    assert r.returncode == 1 and "'node7' not in membership list" in r.stderr


def test_reload_restarts_only_the_changed_service(running: Daemon) -> None:
    d = running
    web_starts = starts(d.state, "base")
    db_starts = starts(d.state, "db")
    d.write(body(d, db_extra=script("db2", d.lsb)), version=2)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: (d.state / "db2.on").exists()), d.logtext()
    assert starts(d.state, "base") == web_starts
    assert starts(d.state, "db") == db_starts  # db itself unchanged: only db2 started


def test_rejected_configuration_changes_nothing(daemon: Daemon) -> None:
    d = daemon
    d.write(body(d, db_extra=script("db2", d.lsb)), version=2)
    d.start()
    assert wait_for(lambda: d.state_of("service:db") == "started"
                    and (d.state / "db2.on").exists()), d.logtext()
    d.conf.write_text(d.conf.read_text().replace('config_version="2"', 'config_version="3"')
                      .replace("<service name=\"db\">", "<service name=\"db\" bogus=\"1\">"))
    assert wait_for(lambda: "reload rejected" in d.logtext(), timeout=20), d.logtext()
    assert d.state_of("service:db") == "started" and (d.state / "db2.on").exists()


def test_sigterm_stops_every_service_and_exits_0(running: Daemon) -> None:
    d = running
    assert d.stop() == 0
    assert not any(d.state.glob("*.on"))
    assert "rgmanager stopped" in d.logtext()


def test_unknown_backend_is_refused_by_the_command_line(daemon: Daemon) -> None:
    d = daemon
    d.write(body(d))
    r = subprocess.run([sys.executable, "-m", "rgmanager.cli.daemon_main", "-c", str(d.conf),
                        "--backend", "sim"], env=d.env, capture_output=True, text=True,
                       timeout=60, cwd=REPO)
    assert r.returncode == 2 and "invalid choice: 'sim'" in r.stderr
    assert "'local', 'corosync'" in r.stderr


def test_demo_config_starts_demo_service(tmp_path: Path) -> None:
    """The README's main job: the daemon on etc/cluster.conf runs the demo service."""
    demo = Path("/usr/local/libexec/rgmanager-py/demo-httpd")
    if not demo.exists():
        pytest.skip("setup.sh has not linked the demo script (needs root)")
    env = {**os.environ, "RGMANAGER_SOCKET": str(tmp_path / "s.sock"),
           "RGMANAGER_LOCK": str(tmp_path / "rgmanager.pid"),
           "RGMANAGER_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "rgmanager.cli.daemon_main", "-c",
                             str(REPO / "etc" / "cluster.conf")], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def started() -> bool:
            r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "-s", "demo"],
                               env=env, capture_output=True, text=True)
            return r.returncode == 0
        assert wait_for(started, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_logging_section_is_applied(tmp_path: Path) -> None:
    import logging

    from rgmanager.agents.discovery import RuleSet
    from rgmanager.config.parser import load_config
    from rgmanager.daemon import configure_logging

    logfile = tmp_path / "log" / "rgmanager.log"
    conf = tmp_path / "c.conf"
    conf.write_text(f'''<?xml version="1.0"?>
<cluster name="t" config_version="1">
  <logging to_logfile="yes" logfile="{logfile}">
    <logging_daemon name="rgmanager" debug="on"/>
  </logging>
  <clusternodes><clusternode name="node1" nodeid="1"/></clusternodes>
  <fencedevices><fencedevice name="pdu" agent="fence_apc" passwd="s3cret"/></fencedevices>
</cluster>''')
    config, _ = load_config(conf, RuleSet())
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging(config, to_stderr=False)
        assert root.level == logging.DEBUG
        logging.getLogger("rgmanager.test").debug("debug line reaches the file")
        logging.getLogger("rgmanager.test").info("fence device: %r",
                                                 config.fencedevice("pdu"))
        for h in root.handlers:
            h.flush()
        text = logfile.read_text()
        assert "debug line reaches the file" in text
        assert "s3cret" not in text and "********" in text  # secrets never logged
    finally:
        for h in list(root.handlers):
            if getattr(h, "_rgmanager", False):
                root.removeHandler(h)
                h.close()
        root.setLevel(saved[0])


def test_fence_ack_of_a_member_or_an_unknown_node_is_refused(running: Daemon) -> None:
    """The daemon answers clusvcadm --fence-ack (fencing is on with every
    backend): node1 is up, so it cannot be acknowledged as fenced; node9 is
    not a cluster node. Nothing moves."""
    d = running
    up = d.cli("clusvcadm", "--fence-ack", "node1")
    assert up.returncode != 0
    assert "node1 is a member of the cluster: it is up" in up.stdout, up
    unknown = d.cli("clusvcadm", "--fence-ack", "node9")
    assert unknown.returncode != 0
    assert "node9 is not a <clusternode> in cluster.conf" in unknown.stdout, unknown
    assert d.state_of("service:web") == "started"
    assert "acknowledged by an administrator" not in d.logtext()
