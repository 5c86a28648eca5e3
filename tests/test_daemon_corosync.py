"""The real daemon on the corosync backend, in a one-node lab (root, corosync).

What only a real corosync shows: the daemon joins the CPG group and runs its
service; when corosync is killed under it, the daemon stops the service at
once (logged at CRITICAL) and, when corosync is back, rejoins as a fresh
member and places the service again; a daemon started before corosync waits
for it with one log line and no traceback.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest

from .cluster_lab import PYTHON, REPO, CorosyncLab, lab_factory, probe, wait_for
from .manager_helpers import cluster_conf, script, write_lsb

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def lab() -> Iterator[CorosyncLab]:
    """A started one-node lab, torn down after the test (pass or fail)."""
    reason = probe()
    if reason:
        pytest.skip(reason)
    make, close_all = lab_factory()
    try:
        yield make(1)
    finally:
        close_all()


class LabDaemon:
    """``rgmanager --backend corosync`` inside lab node 1, its log in a file."""

    def __init__(self, lab: CorosyncLab) -> None:
        self.lab = lab
        self.dir = lab.dir / "rgm"
        self.state = self.dir / "state"
        self.state.mkdir(parents=True)
        lsb = write_lsb(self.dir)
        self.conf = self.dir / "cluster.conf"
        self.conf.write_text(cluster_conf(f'<service name="web">{script("web", lsb)}'
                                          "</service>").replace('name="t"', 'name="rgmlab"'))
        self.log = self.dir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = self.lab.popen(1, [
                PYTHON, "-m", "rgmanager.cli.daemon_main", "-c", str(self.conf),
                "--backend", "corosync", "--node", "node1",
                "--socket", str(self.dir / "rgmanager.sock"),
                "--lock-file", str(self.dir / "rgmanager.pid")],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "HA_RSCTMP": str(self.state),
                     "RGMANAGER_CACHE_DIR": str(self.dir / "cache")})

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
    d.start()
    wait(lambda: "waiting for it" in d.text(), "the waiting log line", d)
    assert not d.running()
    lab.start_corosync(1)
    wait(d.running, "service started once corosync is up", d)
    text = d.text()
    assert text.count("waiting for it") == 1, text
    assert "Traceback" not in text
    assert d.stop() == 0
