"""Direct tests of agent discovery: the meta-data cache and ``parse_metadata``.

Agents are small sh scripts in tmp_path that count their meta-data runs in
a file, so "ran once" and "never ran again" are observed, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.agents import discovery
from rgmanager.agents.discovery import MetadataCache, load_rules
from rgmanager.agents.rules import IMPLIED_NAME, MetadataError, parse_metadata


def xml_for(name: str, extra_params: str = "") -> str:
    return f"""<?xml version="1.0"?>
<resource-agent name="{name}" version="1.0">
  <version>1.0</version>
  <shortdesc lang="en">A   test
    agent</shortdesc>
  <parameters>
    <parameter name="name" primary="1" unique="1" required="1">
      <shortdesc lang="en">Name</shortdesc><content type="string"/>
    </parameter>
    <parameter name="size" reconfig="1">
      <shortdesc lang="en">Size</shortdesc><content type="integer" default="3"/>
    </parameter>{extra_params}
  </parameters>
  <actions>
    <action name="start" timeout="1m"/>
    <action name="status" timeout="10" interval="30s" depth="0"/>
    <action name="status" timeout="20" interval="1h" depth="10"/>
    <action name="monitor" timeout="20" interval="0" depth="*"/>
  </actions>
  <special tag="rgmanager">
    <attributes maxinstances="2" destroy_on_delete="0"/>
    <child type="fs" start="2" stop="8"/>
    <child type="ip" forbid="yes"/>
  </special>
</resource-agent>
"""


def make_agent(directory: Path, name: str, xml: str | None = None,
               stderr: str = "") -> Path:
    """An agent printing *xml* for meta-data and logging each run in ``NAME.runs``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.xml").write_text(xml if xml is not None else xml_for(name))
    path = directory / name
    path.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = meta-data ] || exit 3\n'
        f"echo run >> '{directory}/{name}.runs'\n"
        + (f"echo '{stderr}' >&2\n" if stderr else "")
        + f"cat '{directory}/{name}.xml'\n")
    path.chmod(0o755)
    return path


def runs(directory: Path, name: str) -> int:
    f = directory / f"{name}.runs"
    return len(f.read_text().splitlines()) if f.exists() else 0


# --- the cache ----------------------------------------------------------------


def test_second_load_uses_the_cache_and_runs_nothing(tmp_path: Path) -> None:
    agents, cache = tmp_path / "agents", tmp_path / "cache" / "metadata.json"
    make_agent(agents, "alpha")
    make_agent(agents, "beta")
    first = load_rules([str(agents)], cache_path=cache)
    assert sorted(first.rules) == ["alpha", "beta"] and first.ran_metadata == 2
    assert (runs(agents, "alpha"), runs(agents, "beta")) == (1, 1)
    second = load_rules([str(agents)], cache_path=cache)
    assert second.ran_metadata == 0
    assert (runs(agents, "alpha"), runs(agents, "beta")) == (1, 1)
    assert second.rules == first.rules


def test_edited_agent_is_read_again_and_only_it(tmp_path: Path) -> None:
    agents, cache = tmp_path / "agents", tmp_path / "metadata.json"
    alpha = make_agent(agents, "alpha")
    make_agent(agents, "beta")
    load_rules([str(agents)], cache_path=cache)
    # A new version of the agent: other size and mtime.
    alpha.write_text(alpha.read_text() + "# edited\n")
    st_ = alpha.stat()
    os.utime(alpha, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    again = load_rules([str(agents)], cache_path=cache)
    assert again.ran_metadata == 1
    assert (runs(agents, "alpha"), runs(agents, "beta")) == (2, 1)


def test_cache_disabled_runs_every_time(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    make_agent(agents, "alpha")
    load_rules([str(agents)], cache_path=None)
    load_rules([str(agents)], cache_path=None)
    assert runs(agents, "alpha") == 2


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": 999, "agents": {"x": {}}}),
                                     ""])
def test_unreadable_or_foreign_cache_is_ignored(tmp_path: Path, content: str) -> None:
    cache = tmp_path / "metadata.json"
    cache.write_text(content)
    assert MetadataCache(cache).entries == {}
    agents = tmp_path / "agents"
    make_agent(agents, "alpha")
    assert "alpha" in load_rules([str(agents)], cache_path=cache)
    assert json.loads(cache.read_text())["format"] == discovery.CACHE_FORMAT


def test_cache_get_put_save_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "metadata.json"
    cache = MetadataCache(path)
    assert cache.get("/a", "id1") is None
    cache.put("/a", "id1", b"<xml/>")
    assert cache.get("/a", "id1") == b"<xml/>"
    assert cache.get("/a", "id2") is None  # another identity is another version
    cache.save()
    assert MetadataCache(path).get("/a", "id1") == b"<xml/>"
    assert not list(path.parent.glob("*.tmp*"))


def test_unwritable_cache_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = MetadataCache(blocker / "metadata.json")  # parent is a file
    cache.put("/a", "i", b"x")
    cache.save()
    assert "cannot write meta-data cache" in caplog.text


def test_failed_metadata_is_not_cached(tmp_path: Path) -> None:
    agents, cache = tmp_path / "agents", tmp_path / "metadata.json"
    make_agent(agents, "broken", xml="")
    rules = load_rules([str(agents)], cache_path=cache)
    assert "broken" not in rules and any("empty meta-data" in s for s in rules.skipped)
    load_rules([str(agents)], cache_path=cache)
    assert runs(agents, "broken") == 2


def test_first_directory_wins_a_duplicate_type(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_agent(first, "alpha")
    make_agent(second, "alpha")
    rules = load_rules([str(first), str(second)], cache_path=None)
    assert rules["alpha"].agent == str(first / "alpha")
    assert any("duplicate type alpha" in s for s in rules.skipped)


# --- meta-data runs go through the executor ----------------------------------------


def test_metadata_ignores_stderr(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    make_agent(agents, "noisy", stderr="warning: something odd")
    rules = load_rules([str(agents)], cache_path=None)
    assert "noisy" in rules, rules.skipped


def test_metadata_timeout_kills_the_agents_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hanging meta-data run is killed with its children (executor's process group)."""
    monkeypatch.setattr(discovery, "METADATA_TIMEOUT", 0.3)
    pidfile = tmp_path / "child.pid"
    agent = tmp_path / "agents" / "hang"
    agent.parent.mkdir()
    agent.write_text(f"#!/bin/sh\nsleep 1000 &\necho $! > '{pidfile}'\nsleep 1000\n")
    agent.chmod(0o755)
    t0 = time.monotonic()
    rules = load_rules([str(agent.parent)], cache_path=None)
    assert time.monotonic() - t0 < 8
    assert "hang" not in rules
    child = int(pidfile.read_text())
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end and _alive(child):
            time.sleep(0.02)
        assert not _alive(child), "meta-data timeout left the agent's child running"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def test_our_agents_load_from_the_project_directory(tmp_path: Path) -> None:
    rules = load_rules(cache_path=tmp_path / "metadata.json")
    assert {"service", "fs", "ip", "script"} <= set(rules.rules), rules.skipped


# --- parse_metadata ----------------------------------------------------------------


def test_parse_metadata_reads_everything() -> None:
    rule = parse_metadata(xml_for("alpha"), "/x/alpha", "/x")
    assert (rule.type, rule.agent, rule.ocf_root) == ("alpha", "/x/alpha", "/x")
    assert rule.shortdesc == "A test agent"
    assert rule.primary is not None and rule.primary.name == "name"
    size = rule.param("size")
    assert size is not None and (size.default, size.type, size.reconfig) == ("3", "integer", True)
    assert [(a.name, a.timeout, a.interval, a.depth) for a in rule.actions] == [
        ("start", 60, 0, 0), ("status", 10, 30, 0), ("status", 20, 3600, 10),
        ("monitor", 20, 1, 0)]
    assert (rule.maxinstances, rule.init_on_add, rule.destroy_on_delete) == (2, True, False)
    fs, ip = rule.child("fs"), rule.child("ip")
    assert fs is not None and (fs.start, fs.stop, fs.forbid) == (2, 8, False)
    assert ip is not None and ip.forbid
    assert rule.metadata_params[0] == ("name", "string", "Name")


def test_parse_metadata_puts_the_primary_first() -> None:
    xml = xml_for("alpha").replace('name="name" primary="1"', 'name="name"').replace(
        'name="size" reconfig="1"', 'name="size" primary="1"')
    rule = parse_metadata(xml, "/x/alpha", "/x")
    assert [p.name for p in rule.params] == ["size", "name"]


def test_parse_metadata_implies_a_name_without_a_primary() -> None:
    xml = xml_for("alpha").replace('name="name" primary="1"', 'name="label"')
    rule = parse_metadata(xml, "/x/alpha", "/x")
    assert rule.params[0] == IMPLIED_NAME


@pytest.mark.parametrize(("xml", "why"), [
    ("", "empty meta-data"),
    ("   \n", "empty meta-data"),
    ("<resource-agent", "not XML"),
    ("<other name='x'/>", "not <resource-agent>"),
    ("<resource-agent/>", "no resource-agent name"),
    ("<resource-agent name='action'/>", "reserved"),
    ("<resource-agent name='a'><parameters><parameter name='p' primary='1'/>"
     "<parameter name='q' primary='1'/></parameters></resource-agent>", "more than one primary"),
    ("<resource-agent name='a'><parameters><parameter name='p' inherit='x' required='1'/>"
     "</parameters></resource-agent>", "inherited"),
])
def test_parse_metadata_rejects(xml: str, why: str) -> None:
    with pytest.raises(MetadataError, match=why):
        parse_metadata(xml, "/x/a", "/x")


def test_parse_metadata_does_not_resolve_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    xml = (f'<!DOCTYPE r [<!ENTITY e SYSTEM "file://{secret}">]>'
           '<resource-agent name="a"><shortdesc>&e;</shortdesc></resource-agent>')
    rule = parse_metadata(xml, "/x/a", "/x")
    assert "TOP-SECRET" not in rule.shortdesc


_attr = st.text(alphabet=st.characters(codec="ascii", exclude_characters='"<&\x00'), max_size=8)


@settings(max_examples=200, deadline=None)
@given(depth=_attr, timeout=_attr, interval=_attr, maxinst=_attr, start=_attr)
def test_parse_metadata_raises_only_metadata_error(depth: str, timeout: str, interval: str,
                                                   maxinst: str, start: str) -> None:
    """Whatever an agent writes into its attributes, loading fails with a reason or works."""
    xml = (f'<resource-agent name="a"><actions><action name="status" depth="{depth}" '
           f'timeout="{timeout}" interval="{interval}"/></actions><special tag="rgmanager">'
           f'<attributes maxinstances="{maxinst}"/><child type="fs" start="{start}"/></special>'
           "</resource-agent>")
    try:
        parse_metadata(xml, "/x/a", "/x")
    except MetadataError:
        pass
