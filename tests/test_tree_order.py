"""Start/stop ordering of resource trees, pinned to docs/rgmanager.md §3 and the issue's rules."""

from __future__ import annotations

from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import ChildRule
from rgmanager.loader import load
from rgmanager.tree import Forest, Node, start_order, stop_order

from .conftest import WriteConf
from .seed_rules import NAME, P, rule, seed_rules


def _forest(write_conf: WriteConf, rules: RuleSet, rm: str) -> Forest:
    return load(write_conf(rm), rules).forest


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


SPEC_EXAMPLE = """
<service name="svc1">
  <fs name="f1" mountpoint="/m1" device="/dev/d1"/>
  <fs name="f2" mountpoint="/m2" device="/dev/d2">
    <fs name="f3" mountpoint="/m2/3" device="/dev/d3"/>
    <nfsexport name="e1"/>
  </fs>
  <ip address="10.0.0.1"/>
  <script name="s1" file="/etc/init.d/s1"/>
  <apache name="web"/>
  <mysql name="db"/>
</service>
"""


def test_spec_example_start_and_stop(write_conf: WriteConf, rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, SPEC_EXAMPLE).services[0]
    assert names(start_order(svc)) == [
        "service:svc1", "fs:f1", "fs:f2", "fs:f3", "nfsexport:e1", "ip:10.0.0.1",
        "script:s1", "apache:web", "mysql:db"]
    assert names(stop_order(svc)) == [
        "mysql:db", "apache:web", "script:s1", "ip:10.0.0.1", "nfsexport:e1", "fs:f3",
        "fs:f2", "fs:f1", "service:svc1"]


def test_service_levels_ignore_config_order(write_conf: WriteConf, rules: RuleSet) -> None:
    # Written in reverse of the level order on purpose.
    svc = _forest(write_conf, rules, """
<service name="s">
  <script name="sc" file="/x"/>
  <smb name="smb1"/>
  <ip address="10.0.0.9"/>
  <nfsclient name="c1" target="*" path="/p"/>
  <nfsexport name="e"/>
  <netfs name="n" mountpoint="/n" host="h" export="/e"/>
  <clusterfs name="g" mountpoint="/g" device="/dev/g"/>
  <fs name="f" mountpoint="/f" device="/dev/f"/>
  <lvm name="vg" vg_name="vg0"/>
</service>""").services[0]
    assert names(start_order(svc))[1:] == [
        "lvm:vg", "fs:f", "clusterfs:g", "netfs:n", "nfsexport:e", "nfsclient:c1",
        "ip:10.0.0.9", "smb:smb1", "script:sc"]
    # stop levels: script 1, ip 2, smb 3, nfsclient 4, nfsexport 5, netfs 6, clusterfs 7,
    # fs 8, lvm 9
    assert names(stop_order(svc))[:-1] == [
        "script:sc", "ip:10.0.0.9", "smb:smb1", "nfsclient:c1", "nfsexport:e", "netfs:n",
        "clusterfs:g", "fs:f", "lvm:vg"]


def test_several_siblings_of_one_type(write_conf: WriteConf, rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, """
<service name="s">
  <script name="b" file="/b"/>
  <ip address="10.0.0.3"/>
  <script name="a" file="/a"/>
  <script name="c" file="/c"/>
</service>""").services[0]
    assert names(start_order(svc)) == ["service:s", "ip:10.0.0.3", "script:b", "script:a",
                                       "script:c"]
    assert names(stop_order(svc)) == ["script:c", "script:a", "script:b", "ip:10.0.0.3",
                                      "service:s"]


def test_untyped_children_after_typed_in_config_order(write_conf: WriteConf,
                                                      rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, """
<service name="s">
  <mysql name="db"/>
  <script name="sc" file="/sc"/>
  <apache name="web"/>
  <ip address="10.0.0.4"/>
</service>""").services[0]
    assert names(start_order(svc)) == ["service:s", "ip:10.0.0.4", "script:sc", "mysql:db",
                                       "apache:web"]
    assert names(stop_order(svc)) == ["apache:web", "mysql:db", "script:sc", "ip:10.0.0.4",
                                      "service:s"]


def test_nested_typed_levels(write_conf: WriteConf, rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, """
<service name="s">
  <fs name="outer" mountpoint="/o" device="/dev/o">
    <nfsexport name="ex">
      <nfsclient name="c2" target="b"/>
      <nfsclient name="c1" target="a"/>
    </nfsexport>
    <clusterfs name="cfs" mountpoint="/o/c" device="/dev/c"/>
    <fs name="inner" mountpoint="/o/i" device="/dev/i">
      <apache name="web"/>
    </fs>
  </fs>
</service>""").services[0]
    # fs level 1 lists fs before clusterfs; nfsexport is level 3 on start, 1 on stop;
    # nfsclient under nfsexport has no level: config order.
    assert names(start_order(svc)) == [
        "service:s", "fs:outer", "fs:inner", "apache:web", "clusterfs:cfs", "nfsexport:ex",
        "nfsclient:c2", "nfsclient:c1"]
    assert names(stop_order(svc)) == [
        "nfsclient:c1", "nfsclient:c2", "nfsexport:ex", "apache:web", "fs:inner",
        "clusterfs:cfs", "fs:outer", "service:s"]


def test_nfsserver_levels(write_conf: WriteConf, rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, """
<service name="s">
  <fs name="f" mountpoint="/f" device="/dev/f">
    <nfsserver name="nfs">
      <ip address="10.0.0.5"/>
      <nfsclient name="cl" target="*"/>
    </nfsserver>
  </fs>
</service>""").services[0]
    assert names(start_order(svc)) == ["service:s", "fs:f", "nfsserver:nfs", "nfsclient:cl",
                                       "ip:10.0.0.5"]
    assert names(stop_order(svc)) == ["ip:10.0.0.5", "nfsclient:cl", "nfsserver:nfs", "fs:f",
                                      "service:s"]


def test_parent_without_child_types_runs_config_order(write_conf: WriteConf,
                                                      rules: RuleSet) -> None:
    svc = _forest(write_conf, rules, """
<service name="s">
  <apache name="web">
    <mysql name="z"/>
    <script name="y" file="/y"/>
    <mysql name="x"/>
  </apache>
</service>""").services[0]
    assert names(start_order(svc)) == ["service:s", "apache:web", "mysql:z", "script:y",
                                       "mysql:x"]
    assert names(stop_order(svc)) == ["mysql:x", "script:y", "mysql:z", "apache:web",
                                      "service:s"]


def test_one_sided_levels_join_default_group(write_conf: WriteConf) -> None:
    """Decision 3 (docs/decisions.md): a type with only a start (or stop) level
    is still stopped (started)."""
    rules = RuleSet.from_rules([
        rule("service", (NAME,), (ChildRule("startonly", 1, 0), ChildRule("stoponly", 0, 1))),
        rule("startonly", (NAME,)), rule("stoponly", (NAME,)), rule("apache", (NAME,)),
    ])
    svc = _forest(write_conf, rules, """
<service name="s">
  <stoponly name="b"/>
  <startonly name="a"/>
  <apache name="u"/>
</service>""").services[0]
    assert names(start_order(svc)) == ["service:s", "startonly:a", "stoponly:b", "apache:u"]
    assert names(stop_order(svc)) == ["apache:u", "startonly:a", "stoponly:b", "service:s"]


def test_ref_with_added_children_and_inheritance(write_conf: WriteConf, rules: RuleSet) -> None:
    forest = _forest(write_conf, rules, """
<resources>
  <fs name="data" mountpoint="/srv/data" device="/dev/sdb1"/>
  <nfsexport name="exp"/>
</resources>
<service name="s" nfslock="1">
  <fs ref="data">
    <nfsexport ref="exp">
      <nfsclient name="world" target="*"/>
    </nfsexport>
  </fs>
</service>""")
    svc = forest.services[0]
    assert names(start_order(svc)) == ["service:s", "fs:data", "nfsexport:exp", "nfsclient:world"]
    client = forest.find("nfsclient", "world")[0]
    # nfsclient.path inherits path -> nfsexport.path inherits mountpoint -> fs
    assert client.attr("path") == "/srv/data"
    assert client.attr("service_name") == "s"
    assert forest.find("fs", "data")[0].attr("nfslock") == "1"
    assert forest.find("nfsexport", "exp")[0].attr("device") == "/dev/sdb1"


def test_ref_by_unique_required_value(write_conf: WriteConf, rules: RuleSet) -> None:
    forest = _forest(write_conf, rules, """
<resources><fs name="data" mountpoint="/srv" device="/dev/sdb1"/></resources>
<service name="s"><fs ref="/dev/sdb1"/></service>""")
    assert names(start_order(forest.services[0])) == ["service:s", "fs:data"]


def test_two_services_share_a_resource(write_conf: WriteConf, rules: RuleSet) -> None:
    forest = _forest(write_conf, rules, """
<resources>
  <clusterfs name="gfs" mountpoint="/gfs" device="/dev/vg/gfs"/>
  <nfsexport name="gexp"/>
</resources>
<service name="a">
  <clusterfs ref="gfs"><nfsexport ref="gexp"><nfsclient name="ca" target="a"/></nfsexport>
  </clusterfs>
  <ip address="10.0.0.10"/>
</service>
<service name="b">
  <script name="sb" file="/sb"/>
  <clusterfs ref="gfs"><nfsexport ref="gexp"><nfsclient name="cb" target="b"/></nfsexport>
  </clusterfs>
</service>""")
    a, b = forest.services
    assert names(start_order(a)) == ["service:a", "clusterfs:gfs", "nfsexport:gexp",
                                     "nfsclient:ca", "ip:10.0.0.10"]
    assert names(start_order(b)) == ["service:b", "clusterfs:gfs", "nfsexport:gexp",
                                     "nfsclient:cb", "script:sb"]
    assert names(stop_order(b)) == ["script:sb", "nfsclient:cb", "nfsexport:gexp",
                                    "clusterfs:gfs", "service:b"]
    gfs = [r for r in forest.resources if r.name == "clusterfs:gfs"][0]
    assert gfs.refs == 2
    # Inheritance is per use: each tree sees its own service.
    assert forest.find("nfsclient", "ca")[0].attr("path") == "/gfs"
    assert forest.find("nfsclient", "cb")[0].attr("path") == "/gfs"


def test_inherit_type_attr_takes_nearest_ancestor(write_conf: WriteConf) -> None:
    rules = seed_rules()
    rules.rules["leaf"] = rule("leaf", (NAME, P("where", inherit="fs%mountpoint"),
                                        P("direct", inherit="mountpoint")))
    forest = _forest(write_conf, rules, """
<service name="s">
  <fs name="outer" mountpoint="/outer" device="/dev/o">
    <fs name="inner" mountpoint="/outer/inner" device="/dev/i">
      <apache name="mid"><leaf name="l"/></apache>
    </fs>
  </fs>
</service>""")
    leaf = forest.find("leaf", "l")[0]
    assert leaf.attr("where") == "/outer/inner"
    assert leaf.attr("direct") is None  # apache has no mountpoint: unset, as rgmanager


def test_resource_defaults_apply_everywhere(write_conf: WriteConf, rules: RuleSet) -> None:
    forest = _forest(write_conf, rules, """
<resource-defaults><fs force_unmount="1"/></resource-defaults>
<resources><fs name="r" mountpoint="/r" device="/dev/r"/></resources>
<service name="s"><fs ref="r"/><fs name="i" mountpoint="/i" device="/dev/i" force_unmount="0"/>
</service>""")
    assert forest.find("fs", "r")[0].attr("force_unmount") == "1"
    assert forest.find("fs", "i")[0].attr("force_unmount") == "0"


def test_action_override_on_ref(write_conf: WriteConf, rules: RuleSet) -> None:
    forest = _forest(write_conf, rules, """
<resources><fs name="r" mountpoint="/r" device="/dev/r"/></resources>
<service name="s"><fs ref="r"><action name="status" depth="*" interval="7"/></fs></service>""")
    node = forest.find("fs", "r")[0]
    assert {a.interval for a in node.status_actions()} == {7}


def test_node_action_is_the_one_lookup(write_conf: WriteConf, rules: RuleSet) -> None:
    """Node.action (the only action lookup; the rule has none): the action at the
    asked depth, else the first of that name; overrides on this use count."""
    forest = _forest(write_conf, rules, """
<resources><fs name="r" mountpoint="/r" device="/dev/r"/></resources>
<service name="s"><fs ref="r"><action name="status" depth="10" timeout="99"/></fs>
<fs name="i" mountpoint="/i" device="/dev/i"/></service>""")
    used, plain = forest.find("fs", "r")[0], forest.find("fs", "i")[0]
    assert not hasattr(used.rule, "action")
    status10 = used.action("status", 10)
    assert status10 is not None and (status10.depth, status10.timeout) == (10, 99)
    assert plain.action("status", 10).timeout == 20  # type: ignore[union-attr]
    status_any = plain.action("status", 5)  # no depth 5: the first status
    assert status_any is not None and (status_any.depth, status_any.interval) == (0, 30)
    assert plain.action("reconfig") is None
