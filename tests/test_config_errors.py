"""Bad input: one clear, located message per case and a non-zero exit; never a traceback."""

from __future__ import annotations

import pytest

from rgmanager.agents.discovery import RuleSet
from rgmanager.errors import EXIT_ERRORS, EXIT_WARNINGS, ConfigError, Severity, exit_code
from rgmanager.loader import load

from .conftest import HEADER, WriteConf


def rejected(path: object, rules: RuleSet) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(str(path), rules)
    return info.value


def only_error(err: ConfigError) -> tuple[str, int | None, str, str]:
    errors = [r for r in err.reports if r.severity == Severity.ERROR]
    assert len(errors) == 1, [str(r) for r in errors]
    r = errors[0]
    assert r.source is not None
    assert exit_code(err.reports) == EXIT_ERRORS
    return r.code, r.source.line, r.source.element, r.message


def test_malformed_xml(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf(full=HEADER + "  <rm>\n    <service name='a'>\n  </rm>\n</cluster>\n")
    code, line, _, msg = only_error(rejected(path, rules))
    assert code == "E_XML" and line == 10 and "malformed XML" in msg
    assert str(path) in str(rejected(path, rules))


def test_schema_violation_outside_resources(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf(full="""<?xml version="1.0"?>
<cluster name="c" config_version="1">
  <clusternodes>
    <clusternode name="node1"/>
  </clusternodes>
</cluster>
""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert code == "E_SCHEMA" and line == 4 and element == "clusternode"
    assert "schema" in msg


def test_schema_violation_bad_rm_attribute(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("<service name='a'/>", rm_attrs='status_poll_interval="often"')
    code, line, element, _ = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 8, "rm")


def test_unknown_ref(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a">
      <fs ref="nosuch"/>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_UNKNOWN_REF", 10, "fs")
    assert "nonexistent resource nosuch (type fs)" in msg


def test_ref_to_inline_resource(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a"><ip address="10.0.0.1"/></service>
    <service name="b"><ip ref="10.0.0.1"/></service>""")
    code, line, _, msg = only_error(rejected(path, rules))
    assert code == "E_INLINE_REF" and line == 10 and "inline" in msg


def test_unknown_type(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a">
      <fss name="x"/>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_UNKNOWN_TYPE", 10, "fss")
    assert "unknown resource type 'fss'" in msg


def test_unknown_attribute(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf('<service name="a"><ip address="10.0.0.1" monitorlink="1"/></service>')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_UNKNOWN_ATTR", 9, "ip")
    assert "monitorlink" in msg


def test_missing_required_attribute(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a">
      <fs name="data" mountpoint="/srv"/>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_MISSING_ATTR", 10, "fs")
    assert "'device'" in msg


def test_forbidden_child(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a">
      <ip address="10.0.0.1">
        <nfsclient name="c" target="*"/>
      </ip>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_FORBIDDEN_CHILD", 11, "nfsclient")
    assert "not allowed under ip" in msg


def test_duplicate_unique_value(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="a">
      <fs name="one" mountpoint="/srv/a" device="/dev/sdb1"/>
    </service>
    <service name="b">
      <fs name="two" mountpoint="/srv/b" device="/dev/sdb1"/>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_DUPLICATE_UNIQUE", 13, "fs")
    assert 'device="/dev/sdb1"' in msg and "line 10" in msg


def test_bad_boolean(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf('<service name="a" autostart="maybe"/>')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_BAD_BOOLEAN", 9, "service")
    assert "autostart" in msg and "not a boolean" in msg


def test_bad_boolean_in_domain(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<failoverdomains>
      <failoverdomain name="d" ordered="sometimes"/>
    </failoverdomains>""")
    code, line, element, _ = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_BAD_BOOLEAN", 10, "failoverdomain")


def test_unknown_failover_domain_node(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<failoverdomains>
      <failoverdomain name="d" ordered="1">
        <failoverdomainnode name="node1" priority="1"/>
        <failoverdomainnode name="node9" priority="2"/>
      </failoverdomain>
    </failoverdomains>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_UNKNOWN_DOMAIN_NODE", 12, "failoverdomainnode")
    assert "node9" in msg


def test_duplicate_service_name(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("""<service name="web"/>
    <service name="web"/>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_DUPLICATE", 10, "service")
    assert "duplicate service name: service:web" in msg and "line 9" in msg


def test_unknown_domain_and_depend(write_conf: WriteConf, rules: RuleSet) -> None:
    err = rejected(write_conf('<service name="a" domain="nowhere" depend="service:ghost"/>'),
                   rules)
    codes = sorted(r.code for r in err.reports)
    assert codes == ["E_UNKNOWN_DEPEND", "E_UNKNOWN_DOMAIN"]


def test_bad_recovery_policy(write_conf: WriteConf, rules: RuleSet) -> None:
    code, _, _, msg = only_error(rejected(
        write_conf('<service name="a" recovery="reboot"/>'), rules))
    assert code == "E_BAD_VALUE" and "restart-disable" in msg


def test_missing_file(tmp_path: object, rules: RuleSet) -> None:
    err = rejected(f"{tmp_path}/nope.conf", rules)
    assert err.reports[0].code == "E_FILE"


def test_warning_only_loads_with_warning_exit(write_conf: WriteConf, rules: RuleSet) -> None:
    loaded = load(write_conf('<service name="a" max_restarts="3"/>'), rules)
    assert [r.code for r in loaded.reports] == ["W_NO_EXPIRE"]
    assert exit_code(loaded.reports) == EXIT_WARNINGS
    assert loaded.reports[0].source is not None and loaded.reports[0].source.line == 9


def test_subtree_restart_warning(write_conf: WriteConf, rules: RuleSet) -> None:
    loaded = load(write_conf("""<service name="a">
      <ip address="10.0.0.1" __independent_subtree="1" __max_restarts="2"/>
    </service>"""), rules)
    assert [r.code for r in loaded.reports] == ["W_NO_EXPIRE"]


def test_max_references_warning_leaves_out_extra_ref(write_conf: WriteConf,
                                                     rules: RuleSet) -> None:
    loaded = load(write_conf("""<resources><ip address="10.0.0.1"/></resources>
    <service name="a"><ip ref="10.0.0.1"/></service>
    <service name="b"><ip ref="10.0.0.1"/></service>"""), rules)
    msgs = [r.message for r in loaded.reports]
    assert any("Max references exceeded for resource ip:10.0.0.1" in m for m in msgs)
    a, b = loaded.forest.services
    assert [c.name for c in a.children] == ["ip:10.0.0.1"]
    assert b.children == []
    assert exit_code(loaded.reports) == EXIT_WARNINGS
