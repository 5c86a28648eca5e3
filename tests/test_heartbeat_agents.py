"""Pacemaker's heartbeat OCF agents, named and ordered, in a service of the real daemon.

``symlink`` makes ``link -> real``; the ``Dummy`` after it keeps its state
file *through* the link, so it can only start once the link exists, and its
stop only removes the file if it runs before the link's: the files left
behind show the order. A second, unnamed-in-the-agent's-eyes ``Dummy`` keeps
its state where its own default puts it, ``$HA_RSCTMP/Dummy-<instance>``,
which shows the name reached it as ``OCF_RESOURCE_INSTANCE`` and that the
meta-data's expanded default was not passed back to it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .manager_helpers import wait_for
from .test_daemon import Daemon

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
NEEDED = ("Dummy", "symlink")

pytestmark = pytest.mark.skipif(
    not all((HEARTBEAT / a).is_file() for a in NEEDED),
    reason=f"heartbeat OCF agents {NEEDED} not installed in {HEARTBEAT} "
           "(Debian package resource-agents)")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    d.env["RGMANAGER_AGENT_PATH"] = str(HEARTBEAT)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def body(tmp: Path, policy: str = 'recovery="restart"') -> str:
    every_second = '<action name="monitor" depth="*" interval="1"/>'
    return (f'<resources><Dummy name="data" state="{tmp}/link/data.state"/></resources>'
            f'<service name="web" {policy}>'
            f'<symlink name="link" link="{tmp}/link" target="{tmp}/real"/>'
            f'<Dummy ref="data">{every_second}</Dummy>'
            f'<Dummy name="other">{every_second}</Dummy>'
            '</service>')


def test_named_heartbeat_agents_start_status_reload_stop(daemon: Daemon) -> None:
    d, tmp = daemon, daemon.tmp
    (tmp / "real").mkdir()
    data = tmp / "real" / "data.state"
    other = d.state / "Dummy-Dummy:other.state"
    d.write(body(tmp))
    d.start()
    assert wait_for(lambda: d.state_of("service:web") == "started", timeout=60), d.logtext()

    # started in order: the link first, then the Dummy whose state lives behind it
    assert (tmp / "link").is_symlink() and data.is_file()
    assert other.is_file(), sorted(p.name for p in d.state.iterdir())

    # status: the named Dummy's monitor notices its state file gone; the service restarts
    other.unlink()
    assert wait_for(lambda: other.is_file() and d.services()["service:web"]["restarts"] == 1,
                    timeout=60), d.logtext()
    assert "Dummy:other" in d.logtext()

    # a policy-only reload leaves every part alone
    inode = data.stat().st_ino
    d.write(body(tmp, 'recovery="relocate"'), version=2)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "configuration 1 -> 2 applied" in d.logtext()), d.logtext()
    assert d.state_of("service:web") == "started"
    assert data.stat().st_ino == inode and other.is_file()

    # stopped in reverse order: the Dummy removed its file through the link
    assert d.stop() == 0
    assert not (tmp / "link").exists() and not (tmp / "link").is_symlink()
    assert not data.exists() and not other.exists()


def test_rg_test_status_of_a_named_heartbeat_resource_runs_its_monitor(tmp_path: Path) -> None:
    """rg_test finds a heartbeat resource by its name; its status check is the agent's
    monitor (Pacemaker agents declare no status action), not a skipped step."""
    d = Daemon(tmp_path)  # only for its paths, environment and CLI runner
    d.env["RGMANAGER_AGENT_PATH"] = str(HEARTBEAT)
    (tmp_path / "real").mkdir()
    d.write(body(tmp_path))
    conf = str(d.conf)
    other = d.state / "Dummy-Dummy:other.state"
    r = d.cli("rg_test", "test", conf, "start", "service", "web")
    assert r.returncode == 0 and other.is_file(), r.stdout + r.stderr
    try:
        r = d.cli("rg_test", "test", conf, "status", "Dummy", "other")
        assert r.returncode == 0 and "Status of other is good" in r.stdout, r.stdout + r.stderr
        other.unlink()
        r = d.cli("rg_test", "test", conf, "status", "Dummy", "other")
        assert r.returncode != 0 and "Status check of other failed" in r.stdout, r.stdout
    finally:
        r = d.cli("rg_test", "test", conf, "stop", "service", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "link").is_symlink() and not (tmp_path / "real" / "data.state").exists()
