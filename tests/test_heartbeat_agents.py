"""Pacemaker's heartbeat OCF agents, named and ordered, in a service of the real daemon.

First the rules in-process (an agent without a primary parameter accepts an
optional, unique ``name``), then the real agents, when installed.

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

from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import parse_metadata
from rgmanager.errors import ConfigError
from rgmanager.loader import Loaded, load
from rgmanager.treeops import TreeOps

from .conftest import HEADER
from .manager_helpers import wait_for
from .seed_rules import SEED
from .test_daemon import Daemon

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
NEEDED = ("Dummy", "symlink")

needs_heartbeat = pytest.mark.skipif(
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


@needs_heartbeat
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


@needs_heartbeat
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


# -- in-process: the implied name, on an agent made for the test ------------------------
BLOB_XML = """<?xml version="1.0"?>
<resource-agent name="Blob" version="1.0">
  <parameters>
    <parameter name="state" unique="1"><content type="string" default="/run/Blob-X"/></parameter>
    <parameter name="size"><content type="integer" default="1"/></parameter>
  </parameters>
  <actions><action name="start" timeout="5"/><action name="stop" timeout="5"/>
    <action name="monitor" timeout="5" interval="10"/></actions>
</resource-agent>
"""
RULES = RuleSet.from_rules([*SEED, parse_metadata(BLOB_XML, "/nonexistent/Blob", "/")])


def load_rm(tmp_path: Path, rm: str) -> Loaded:
    path = tmp_path / "cluster.conf"
    path.write_text(HEADER + f"<rm>{rm}</rm></cluster>\n")
    return load(path, RULES)


def test_primaryless_agent_gets_an_optional_unique_name() -> None:
    blob = RULES["Blob"]
    assert blob.primary is not None and blob.primary.name == "name" and blob.primary.implied
    assert not blob.primary.required and blob.params[0] is blob.primary
    assert RULES["script"].primary is not None and not RULES["script"].primary.implied


def test_named_blob_is_referenced_and_instance_is_its_name(tmp_path: Path) -> None:
    loaded = load_rm(tmp_path, '<resources><Blob name="a" size="2"/></resources>'
                     '<service name="web"><Blob ref="a"/><Blob/><Blob/></service>')
    a = loaded.forest.find("Blob", "a")
    assert len(a) == 1 and a[0].path == "service:web/Blob:a"
    req = TreeOps(noop=True).request(a[0], "start")
    assert req.instance == "Blob:a"
    # the agent never declared "name"; a unique parameter's default is its own to apply
    assert req.params == {"size": "2"}
    unnamed = [n for n in loaded.forest.services[0].children if n.name == "Blob:"]
    assert len(unnamed) == 2


def test_two_blobs_with_one_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_rm(tmp_path, '<service name="web"><Blob name="a"/><Blob name="a"/></service>')
    assert "E_DUPLICATE" in str(err.value) and "Blob:a" in str(err.value)


def test_ref_to_unknown_blob_is_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_rm(tmp_path, '<service name="web"><Blob ref="nosuch"/></service>')
    assert "E_UNKNOWN_REF" in str(err.value)
