"""tree.delta on its own: what a reload must stop, start or only reconfigure.

The service rule here is our real agent's meta-data (rendered in-process, no
agent runs), so the ``reconfig`` flags under test are the ones the daemon
sees; the other types are the seed rules plus two made for these tests: a
``knob`` with one reconfig parameter and a primary-less ``Blob`` (as
Pacemaker's heartbeat agents are).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.agentlib import service
from rgmanager.agentlib.ocf import render_metadata
from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import parse_metadata
from rgmanager.loader import load
from rgmanager.tree import Forest
from rgmanager.tree.delta import Delta, diff

from .conftest import HEADER
from .seed_rules import NAME, SEED, P, rule

BLOB_XML = """<?xml version="1.0"?>
<resource-agent name="Blob" version="1.0">
  <parameters>
    <parameter name="size"><content type="integer" default="1"/></parameter>
  </parameters>
  <actions><action name="start" timeout="5"/><action name="stop" timeout="5"/></actions>
</resource-agent>
"""


def _rules() -> RuleSet:
    real_service = parse_metadata(render_metadata(service.SPEC), "/nonexistent/service",
                                  "/nonexistent")
    knob = rule("knob", (NAME, P("level", reconfig=True), P("path")))
    blob = parse_metadata(BLOB_XML, "/nonexistent/Blob", "/nonexistent")
    return RuleSet.from_rules([real_service, knob, blob,
                               *(r for r in SEED if r.type != "service")])


RULES = _rules()
DOMAINS = ('<failoverdomains><failoverdomain name="d1"><failoverdomainnode name="node1"/>'
           '</failoverdomain></failoverdomains>')
_counter = itertools.count()


def forest(tmp_path: Path, rm: str) -> Forest:
    path = tmp_path / f"c{next(_counter)}.conf"
    path.write_text(HEADER + f"<rm>{DOMAINS}{rm}</rm></cluster>\n")
    return load(path, RULES).forest


def delta(tmp_path: Path, old: str, new: str) -> Delta:
    return diff(forest(tmp_path, old), forest(tmp_path, new))


TREE = ('<service name="web" {svc}>'
        '<fs name="data" mountpoint="/data" device="/dev/sdb1" {fs}>'
        '<knob name="k" {knob}/></fs>'
        '<ip address="10.0.0.1"/><script name="app" file="/etc/init.d/app" {script}/>'
        '</service><service name="db"/>')


def tree(svc: str = "", fs: str = "", knob: str = "", script: str = "") -> str:
    return TREE.format(svc=svc, fs=fs, knob=knob, script=script)


def test_same_configuration_is_empty(tmp_path: Path) -> None:
    d = delta(tmp_path, tree(), tree())
    assert d.empty and d.as_dict()["services"] == {"added": [], "removed": [], "changed": []}


@pytest.mark.parametrize("attr", [
    'recovery="relocate"', 'domain="d1"', 'autostart="0"', 'exclusive="1"',
    'max_restarts="3"', 'restart_expire_time="600"', 'depend="service:db"',
    'depend_mode="soft"', 'priority="5"',
    'recovery="disable" max_restarts="2" restart_expire_time="60" autostart="0"'])
def test_service_policy_change_is_reconfig_only(tmp_path: Path, attr: str) -> None:
    d = delta(tmp_path, tree(), tree(svc=attr))
    (sd,) = d.services_changed
    assert (sd.stop, sd.start, sd.reconfig) == ([], [], ["service:web"])
    assert list(d.resources_changed) == ["service:web"]


def test_nfslock_is_not_policy_and_restarts_the_service(tmp_path: Path) -> None:
    """nfslock reaches children by inheritance: changing it restarts everything."""
    d = delta(tmp_path, tree(), tree(svc='nfslock="1"'))
    (sd,) = d.services_changed
    assert sd.stop[-1] == "service:web" and sd.start[0] == "service:web"
    assert set(sd.stop) == set(sd.start) == {"service:web", "fs:data", "knob:k",
                                             "ip:10.0.0.1", "script:app"}


def test_child_reconfig_param_is_reconfigured_in_place(tmp_path: Path) -> None:
    d = delta(tmp_path, tree(knob='level="1"'), tree(knob='level="2"'))
    (sd,) = d.services_changed
    assert (sd.stop, sd.start, sd.reconfig) == ([], [], ["knob:k"])
    assert d.resources_changed == {"knob:k": {"level": ("1", "2")}}


def test_reconfig_and_plain_change_together_restart_the_node(tmp_path: Path) -> None:
    d = delta(tmp_path, tree(knob='level="1"'), tree(knob='level="2" path="/x"'))
    (sd,) = d.services_changed
    assert (sd.stop, sd.start, sd.reconfig) == (["knob:k"], ["knob:k"], [])


def test_plain_change_restarts_only_that_subtree_in_order(tmp_path: Path) -> None:
    d = delta(tmp_path, tree(), tree(fs='fstype="xfs"'))
    (sd,) = d.services_changed
    assert sd.stop == ["knob:k", "fs:data"] and sd.start == ["fs:data", "knob:k"]
    assert sd.reconfig == []


def test_policy_change_with_a_child_change_restarts_only_the_child(tmp_path: Path) -> None:
    d = delta(tmp_path, tree(), tree(svc='recovery="relocate"', script='__enforce_timeouts="1"'))
    (sd,) = d.services_changed
    assert (sd.stop, sd.start, sd.reconfig) == (["script:app"], ["script:app"], ["service:web"])


def test_child_flags_restart_it(tmp_path: Path) -> None:
    """Flags on a child (not parameters) restart it, restart counters included."""
    ind = '__independent_subtree="1"'
    d = delta(tmp_path, tree(script=ind), tree(script=ind + ' __max_restarts="2"'))
    (sd,) = d.services_changed
    assert (sd.stop, sd.start) == (["script:app"], ["script:app"])


def test_added_and_removed_children(tmp_path: Path) -> None:
    old = '<service name="web"><script name="a" file="/a"/><script name="b" file="/b"/></service>'
    new = '<service name="web"><script name="b" file="/b"/><script name="c" file="/c"/></service>'
    d = delta(tmp_path, old, new)
    (sd,) = d.services_changed
    assert (sd.stop, sd.start, sd.reconfig) == (["script:a"], ["script:c"], [])
    assert d.resources_added == ["script:c"] and d.resources_removed == ["script:a"]


def test_services_added_and_removed(tmp_path: Path) -> None:
    d = delta(tmp_path, '<service name="a"/><service name="b"/>',
              '<service name="b"/><service name="c"/>')
    assert (d.services_added, d.services_removed, d.services_changed) == (
        ["service:c"], ["service:a"], [])
    assert d.as_dict()["services"] == {"added": ["service:c"], "removed": ["service:a"],
                                       "changed": []}


def test_named_primaryless_resource_renamed_is_replaced(tmp_path: Path) -> None:
    d = delta(tmp_path, '<service name="web"><Blob name="x"/></service>',
              '<service name="web"><Blob name="y"/></service>')
    (sd,) = d.services_changed
    assert (sd.stop, sd.start) == (["Blob:x"], ["Blob:y"])


def test_shared_resource_change_reaches_every_use(tmp_path: Path) -> None:
    res = '<resources><knob name="k" level="{}"/></resources>'
    svcs = '<service name="a"><knob ref="k"/></service><service name="b"><knob ref="k"/></service>'
    d = delta(tmp_path, res.format(1) + svcs, res.format(2) + svcs)
    assert [(s.name, s.reconfig) for s in d.services_changed] == [
        ("service:a", ["knob:k"]), ("service:b", ["knob:k"])]


POLICY = {
    "recovery": st.sampled_from(["restart", "relocate", "disable", "restart-disable"]),
    "autostart": st.sampled_from(["0", "1"]),
    "exclusive": st.sampled_from(["0", "1"]),
    "max_restarts": st.integers(0, 9).map(str),
    "restart_expire_time": st.integers(0, 999).map(str),
    "priority": st.integers(0, 9).map(str),
    "depend_mode": st.sampled_from(["hard", "soft"]),
}


@settings(max_examples=40, deadline=None)
@given(old=st.fixed_dictionaries({}, optional=POLICY),
       new=st.fixed_dictionaries({}, optional=POLICY))
def test_policy_changes_never_stop_or_start(tmp_path_factory: pytest.TempPathFactory,
                                            old: dict[str, str], new: dict[str, str]) -> None:
    """Any mix of policy values, before and after: never a stop or a start."""
    tmp = tmp_path_factory.mktemp("policy")

    def svc(attrs: dict[str, str]) -> str:
        return " ".join(f'{k}="{v}"' for k, v in attrs.items())

    d = delta(tmp, tree(svc=svc(old)), tree(svc=svc(new)))
    for sd in d.services_changed:
        assert sd.stop == [] and sd.start == [] and sd.reconfig == ["service:web"]
    assert not (d.services_added or d.services_removed)
