"""cluster.conf's values are parsed once, in ``config``, into typed fields.

Consumers read ``RMConfig.enforce_timeouts``, ``ResourceDecl.independent``,
``ClusterConfig.two_node``... instead of parsing the raw strings again, each
in its own way; ``parse_bool`` is the one boolean reader.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rgmanager.agents.discovery import RuleSet
from rgmanager.config import parse_bool
from rgmanager.config.parser import FALSE_WORDS, TRUE_WORDS, load_config

from .conftest import WriteConf

TWO_NODES = """<?xml version="1.0"?>
<cluster name="t" config_version="1">
  <cman {cman}/>
  <clusternodes>
    <clusternode name="a" nodeid="1"/>
    <clusternode name="b" nodeid="2" votes="2"/>
  </clusternodes>
  {logging}
  <rm {rm}><service name="s"/></rm>
</cluster>
"""


@pytest.mark.parametrize("word", ["1", "yes", "YES", " on ", "True", "tRuE"])
def test_true_words(word: str) -> None:
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["0", "no", "No", "off", " FALSE "])
def test_false_words(word: str) -> None:
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["", "2", "y", "enabled", "non-critical"])
def test_other_words_are_errors_unless_a_default_is_given(word: str) -> None:
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_bool(word)
    assert parse_bool(word, False) is False and parse_bool(word, True) is True
    assert parse_bool(None, False) is False


@given(st.text(max_size=12))
def test_parse_bool_with_default_never_raises_and_agrees(text: str) -> None:
    lenient = parse_bool(text, False)
    try:
        strict = parse_bool(text)
    except ValueError:
        assert text.strip().lower() not in TRUE_WORDS | FALSE_WORDS
        assert lenient is False and parse_bool(text, True) is True
    else:
        assert strict is lenient


def test_union_of_the_old_readers_is_kept() -> None:
    # daemon/manager/rg_test/tree.build accepted 1/yes/on/true (lenient);
    # the parser's strict reader accepted these and 0/no/off/false.
    assert {"1", "yes", "on", "true"} == TRUE_WORDS
    assert {"0", "no", "off", "false"} == FALSE_WORDS


def test_rm_fields(write_conf: WriteConf, rules: RuleSet) -> None:
    path = write_conf("<service name='s'/>", rm_attrs='enforce_timeouts="yes" '
                      'central_processing="1" status_poll_interval="5" log_level="7"')
    config, reports = load_config(path, rules)
    rm = config.rm
    assert (rm.enforce_timeouts, rm.central_processing, rm.status_poll_interval,
            rm.log_level) == (True, True, 5, 7)
    assert [r.code for r in reports].count("W_CENTRAL") == 1
    assert rm.attrs["enforce_timeouts"] == "yes"  # the text as written stays


def test_rm_defaults(write_conf: WriteConf, rules: RuleSet) -> None:
    config, _ = load_config(write_conf("<service name='s'/>"), rules)
    rm = config.rm
    assert (rm.enforce_timeouts, rm.central_processing, rm.status_poll_interval,
            rm.log_level) == (False, False, 10, None)
    assert (config.expected_votes, config.two_node, config.log_debug) == (0, False, False)
    assert config.quorum_expected_votes == 3 and config.complete


def test_cman_and_logging_fields(write_conf: WriteConf, rules: RuleSet) -> None:
    text = TWO_NODES.format(cman='two_node="1" expected_votes="1"',
                            logging='<logging debug="on"/>', rm="")
    config, _ = load_config(write_conf(full=text), rules)
    assert (config.expected_votes, config.two_node, config.log_debug) == (1, True, True)
    assert config.quorum_expected_votes == 1
    text = TWO_NODES.format(cman="", logging='<logging debug="on"><logging_daemon '
                            'name="rgmanager" debug="off"/></logging>', rm="")
    config, _ = load_config(write_conf(full=text), rules)
    assert not config.log_debug and config.quorum_expected_votes == 3
    text = TWO_NODES.format(cman="", rm="", logging='<logging to_syslog="yes" '
                            'to_logfile="no" logfile="/var/log/c.log"><logging_daemon '
                            'name="rgmanager" to_logfile="on"/></logging>')
    config, _ = load_config(write_conf(full=text), rules)
    assert (config.log_to_syslog, config.log_to_logfile, config.log_file) == (
        True, True, "/var/log/c.log")


@pytest.mark.parametrize(("flag", "independent", "noncritical"), [
    ("0", False, False), ("no", False, False), ("1", True, False), ("yes", True, False),
    ("2", True, True), ("non-critical", True, True)])
def test_resource_flags(write_conf: WriteConf, rules: RuleSet, flag: str, independent: bool,
                        noncritical: bool) -> None:
    path = write_conf(f'<service name="s"><script name="x" file="/bin/true" '
                      f'__independent_subtree="{flag}" __enforce_timeouts="on"/></service>')
    config, _ = load_config(path, rules)
    child = config.rm.services[0].children[0]
    assert (child.independent, child.noncritical, child.enforce_timeouts) == (
        independent, noncritical, True)
    assert not config.rm.services[0].enforce_timeouts
