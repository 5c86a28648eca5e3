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


# -- found by the mutation fuzzer (benchmarks/fuzz_config.py): each was a traceback ----
def all_errors(err: ConfigError) -> list[tuple[str, int | None, str, str]]:
    assert exit_code(err.reports) == EXIT_ERRORS
    out = []
    for r in err.reports:
        if r.severity == Severity.ERROR:
            assert r.source is not None, str(r)
            out.append((r.code, r.source.line, r.source.element, r.message))
    return out


def test_deep_nesting_is_a_located_error(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was RecursionError in the parser and the tree build (and in --json rendering).
    depth = 990
    body = '<service name="a">\n' + '<script name="s" file="/bin/true">\n' * depth
    body += "</script>\n" * depth + "</service>"
    code, line, element, msg = only_error(rejected(write_conf(body), rules))
    assert code == "E_TOO_DEEP" and element == "script"
    assert line == 9 + 98  # <cluster> is level 1, <rm> 2, the service 3 (line 9)
    assert "at most 100 levels" in msg


def test_nesting_at_the_limit_loads(write_conf: WriteConf, rules: RuleSet) -> None:
    depth = 97  # service at level 3, so the deepest script is at level 100
    body = '<service name="a">' + "".join(f'<script name="s{i}" file="/bin/s{i}">'
                                         for i in range(depth))
    body += "</script>" * depth + "</service>"
    loaded = load(write_conf(body), rules)
    node, levels = loaded.forest.services[0], 1
    while node.children:
        node, levels = node.children[0], levels + 1
    assert levels == depth + 1


def test_action_depth_not_a_number(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was ValueError in tree.build.apply_overrides.
    path = write_conf("""<service name="a">
      <script name="s" file="/bin/true">
        <action name="status" depth="deep" interval="10"/>
      </script>
    </service>""")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_BAD_VALUE", 11, "action")
    assert "'deep'" in msg and "depth" in msg


@pytest.mark.parametrize("attrs, code, word", [
    ('timeout="soon"', "E_BAD_TIME", "not a time"),
    ('interval="9' + "9" * 5000 + '"', "E_BAD_TIME", "too long"),
    ('depth="1' + "0" * 5000 + '"', "E_BAD_VALUE", "too large"),
    ('deep="1"', "E_UNKNOWN_ATTR", "'deep'"),
])
def test_bad_action_override(write_conf: WriteConf, rules: RuleSet, attrs: str, code: str,
                             word: str) -> None:
    path = write_conf(f'<service name="a"><action name="status" {attrs}/></service>')
    got, line, element, msg = only_error(rejected(path, rules))
    assert (got, line, element) == (code, 9, "action") and word in msg


def test_huge_config_version(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was "Exceeds the limit (4300 digits) for integer string conversion".
    path = write_conf(full=HEADER.replace('config_version="1"',
                                          f'config_version="{"7" * 5000}"') + "</cluster>\n")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 2, "cluster")
    assert "config_version" in msg and "too large" in msg and len(msg) < 300


@pytest.mark.parametrize("attr, code", [
    ('max_restarts="' + "1" * 5000 + '"', "E_BAD_INTEGER"),
    ('max_restarts="1" restart_expire_time="' + "1" * 5000 + '"', "E_BAD_TIME"),
    ('__max_failures="' + "1" * 5000 + '"', "E_BAD_INTEGER"),
    ('__failure_expire_time="' + "1" * 5000 + '"', "E_BAD_TIME"),
    ('max_restarts="\u0661"', "E_BAD_INTEGER"),  # an Arabic-Indic digit: int() took it
])
def test_absurd_numbers_on_resources(write_conf: WriteConf, rules: RuleSet, attr: str,
                                     code: str) -> None:
    got, line, element, _ = only_error(rejected(write_conf(f'<service name="a" {attr}/>'),
                                                rules))
    assert (got, line, element) == (code, 9, "service")


def test_resource_defaults_values_are_checked(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was accepted, then ValueError in the planner (parse_bool on the default).
    path = write_conf('<resource-defaults><service autostart="perhaps"/></resource-defaults>'
                      '\n<service name="a"/>')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_BAD_BOOLEAN", 9, "service") and "perhaps" in msg


def test_cman_numbers_are_checked(write_conf: WriteConf, rules: RuleSet) -> None:
    # simulate's quorum read int() of any str.isdigit() value ("²" crashed it).
    path = write_conf(full=HEADER + '  <cman expected_votes="\u00b2"/>\n</cluster>\n')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 8, "cman") and "expected_votes" in msg


# -- schema errors name the culprit, and all of them are reported -----------------
def test_missing_cluster_name_is_named(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was "Element cluster failed to validate attributes".
    path = write_conf(full=HEADER.replace('name="test" ', "") + "</cluster>\n")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 2, "cluster")
    assert "missing required attribute 'name'" in msg


def test_unknown_rm_attribute_is_named(write_conf: WriteConf, rules: RuleSet) -> None:
    # Was "Element cluster failed to validate content" (on the wrong element).
    path = write_conf('<service name="a"/>', rm_attrs='bogus="1"')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 8, "rm")
    assert "unexpected attribute 'bogus'" in msg


def test_every_schema_error_is_reported(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf(full="""<?xml version="1.0"?>
<cluster config_version="x">
  <clusternodes>
    <clusternode name="node1" nodeid="0"/>
    <clusternode nodeid="2" colour="red"/>
  </clusternodes>
  <clusternodes/>
  <fencing/>
  <rm bogus="1">
    <failoverdomains>
      <failoverdomain name="d"><member name="node1"/></failoverdomain>
    </failoverdomains>
    <service name="a" autostart="maybe"/>
  </rm>
</cluster>
""")
    errors = all_errors(rejected(path, rules))
    got = {(code, line, element) for code, line, element, _ in errors}
    assert got == {
        ("E_SCHEMA", 2, "cluster"),  # name missing, config_version not a number
        ("E_SCHEMA", 4, "clusternode"),  # nodeid 0
        ("E_SCHEMA", 5, "clusternode"),  # name missing, colour unexpected
        ("E_SCHEMA", 7, "clusternodes"),  # twice, and empty
        ("E_SCHEMA", 8, "fencing"),  # unknown element
        ("E_SCHEMA", 9, "rm"),  # bogus
        ("E_SCHEMA", 11, "member"),  # unknown element
        ("E_BAD_BOOLEAN", 13, "service"),
    }
    text = "\n".join(m for *_, m in errors)
    for needle in ("missing required attribute 'name'", "'x' is not a non-negative integer",
                   "'0' is not a positive integer", "unexpected attribute 'colour'",
                   "<clusternodes> may appear only once in <cluster> (first at line 3)",
                   "unexpected element <fencing> in <cluster>",
                   "unexpected attribute 'bogus' on <rm>",
                   "unexpected element <member> in <failoverdomain>"):
        assert needle in text, needle
    assert "<clusternodes> is missing required element <clusternode>" in text
    assert len(errors) == 11, "\n".join(map(str, errors))
    lines = [line or 0 for _, line, _, _ in errors]
    assert lines == sorted(lines)  # in file order


def test_missing_required_child_is_named(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf(full='<?xml version="1.0"?>\n<cluster name="c" config_version="1">\n'
                      "  <rm/>\n</cluster>\n")
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 2, "cluster")
    assert "missing required element <clusternodes>" in msg


def test_stray_text_in_a_service(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf('<service name="a">oops<ip address="10.0.0.1"/></service>')
    code, line, element, msg = only_error(rejected(path, rules))
    assert (code, line, element) == ("E_SCHEMA", 9, "service") and "'oops'" in msg


def test_external_entities_are_never_read(write_conf: WriteConf, rules: RuleSet,
                                          tmp_path: object) -> None:
    secret = f"{tmp_path}/secret"
    with open(secret, "w") as f:
        f.write("TOPSECRET")
    doctype = f'<!DOCTYPE cluster [<!ENTITY s SYSTEM "file://{secret}">]>\n'
    path = write_conf(full=HEADER.replace("?>\n", "?>\n" + doctype, 1).replace(
        "</clusternodes>\n", "</clusternodes>\n  <rm><service name=\"&s;\"/></rm>\n")
        + "</cluster>\n")
    err = rejected(path, rules)
    assert "TOPSECRET" not in str(err)
    assert err.reports[0].code == "E_XML"
    in_text = write_conf(full=HEADER.replace("?>\n", "?>\n" + doctype, 1).replace(
        "</clusternodes>\n", "</clusternodes>\n  <rm><service name=\"a\">&s;</service></rm>\n")
        + "</cluster>\n")
    loaded = load(in_text, rules)
    assert "TOPSECRET" not in repr(loaded.config)


@pytest.mark.parametrize("name", [" 7 ", " ", ""])
def test_blank_or_padded_service_name(write_conf: WriteConf, rules: RuleSet, name: str) -> None:
    # Fuzzer seed 1, cases 2607 and 8714: accepted, then no event could name the service.
    code, line, element, msg = only_error(rejected(write_conf(f'<service name="{name}"/>'),
                                                   rules))
    assert (code, line, element) == ("E_BAD_VALUE", 9, "service") and repr(name) in msg
