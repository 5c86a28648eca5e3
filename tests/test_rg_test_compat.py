"""rg_test's command line: option placement, exit codes, agent directories, state files.

Exit codes are an interface: 2 means "configuration rejected" and 1 "warnings",
so neither may be used for a bad command line (64), an unusable --state file
(65) or a bug (70).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rgmanager.agents.discovery import RuleSet, default_agent_dirs, load_rules
from rgmanager.cli import rg_test as rg_test_cli
from rgmanager.config.model import redact, redact_value
from rgmanager.errors import EXIT_ERRORS, EXIT_WARNINGS, ConfigError
from rgmanager.loader import load

from .test_rg_test_cli import CONF

REPO = Path(__file__).resolve().parents[1]


def rg_test(*args: str, cache: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(cache),
                               "PYTHONPATH": str(REPO)})


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    p = tmp_path / "cluster.conf"
    p.write_text(CONF.format(version=1, extra=""))
    return p


def test_exit_codes_are_distinct() -> None:
    codes = {0, EXIT_WARNINGS, EXIT_ERRORS, rg_test_cli.EXIT_USAGE, rg_test_cli.EXIT_DATA,
             rg_test_cli.EXIT_INTERNAL, rg_test_cli.EXIT_OP_FAILED}
    assert len(codes) == 7
    assert (rg_test_cli.EXIT_USAGE, rg_test_cli.EXIT_DATA, rg_test_cli.EXIT_INTERNAL) == (
        64, 65, 70)


# ------------------------------------------------------------ --json placement


@pytest.mark.parametrize("argv", [
    ["test", "{conf}"],
    ["noop", "{conf}", "start", "service", "web"],
    ["delta", "{conf}", "{conf}"],
    ["simulate", "{conf}", "--event", "node-down:node1"],
])
def test_json_after_the_subcommand(conf: Path, tmp_path: Path, argv: list[str]) -> None:
    args = [a.format(conf=conf) for a in argv]
    before = rg_test("--json", *args, cache=tmp_path)
    after = rg_test(*args, "--json", cache=tmp_path)
    assert after.returncode == before.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)


def test_json_flag_before_subcommand_is_not_reset(conf: Path, tmp_path: Path) -> None:
    r = rg_test("--json", "simulate", str(conf), "--explain", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


@pytest.mark.parametrize("argv", [["--json", "schema"], ["schema", "--json"]])
def test_schema_json_is_json(tmp_path: Path, argv: list[str]) -> None:
    r = rg_test(*argv, cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["format"] == "relaxng"
    assert data["grammar"].startswith("<grammar")
    plain = rg_test("schema", cache=tmp_path)
    assert plain.stdout == data["grammar"]


# ------------------------------------------------------------ usage errors


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["test"],
    ["noop", "{conf}"],
    ["test", "{conf}", "start", "service"],
    ["simulate", "{conf}", "--event", "bogus"],
    ["simulate", "{conf}", "--event", "node-down:"],
    ["simulate", "{conf}", "--event", "node-down:node9"],
    ["simulate", "{conf}", "--event", "fail:nosuch"],
    ["test", "{conf}", "--depth", "deep"],
])
def test_usage_errors_exit_64_not_2(conf: Path, tmp_path: Path, argv: list[str]) -> None:
    r = rg_test(*[a.format(conf=conf) for a in argv], cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_USAGE == 64, r.stderr
    assert "error:" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_bad_event_message_names_the_event(conf: Path, tmp_path: Path) -> None:
    r = rg_test("simulate", str(conf), "--event", "node-down:node9", cache=tmp_path)
    assert "node-down:node9: node9 is not a configured node" in r.stderr


# ------------------------------------------------------------ agent directories


@pytest.mark.parametrize("argv", [["/nonexistent", "rules"], ["/nonexistent", "test", "x"],
                                  ["--agent-dir", "/nonexistent", "rules"]])
def test_missing_agent_directory_is_named(tmp_path: Path, argv: list[str]) -> None:
    r = rg_test(*argv, cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_USAGE
    assert "agent directory /nonexistent does not exist" in r.stderr
    assert "invalid choice" not in r.stderr


def test_agent_directory_that_is_a_file(tmp_path: Path, conf: Path) -> None:
    r = rg_test(str(conf), "rules", cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_USAGE
    assert f"agent directory {conf} is not a directory" in r.stderr


def test_old_agentdir_form_still_works(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    r = rg_test(str(agents), "rules", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f":{agents} as resource agent path" in r.stderr


def test_subdirectory_named_like_a_subcommand_is_not_an_agent_dir(
        tmp_path: Path, conf: Path) -> None:
    work = tmp_path / "work"
    for name in ("test", "rules", "schema"):
        (work / name).mkdir(parents=True)
    r = rg_test("test", str(conf), cache=tmp_path, cwd=work)
    assert r.returncode == 0, r.stderr
    assert "=== Resource Tree ===" in r.stdout
    r = rg_test("rules", cache=tmp_path, cwd=work)
    assert r.returncode == 0, r.stderr
    assert 'Resource Rules for "service"' in r.stdout
    assert f"{work}" not in r.stderr


# ------------------------------------------------------------ simulate --state


def test_missing_state_file_is_named(conf: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    r = rg_test("simulate", str(conf), "--state", str(missing), cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_DATA
    assert r.stderr.splitlines()[-1] == (
        f"rg_test simulate: --state {missing}: No such file or directory")


@pytest.mark.parametrize("text", ["[1", "[1, 2]", '{"members": 3}', '{"a": 1}', "\xff"])
def test_bad_state_file_is_named(conf: Path, tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text, encoding="latin-1")
    r = rg_test("simulate", str(conf), "--state", str(bad), cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_DATA, r.stderr
    assert f"--state {bad}: " in r.stderr
    assert "Traceback" not in r.stderr


def test_state_from_another_configuration_is_refused(conf: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.conf"
    other.write_text(CONF.format(version=1, extra="").replace("node1", "nodeA")
                     .replace("node2", "nodeB"))
    state = tmp_path / "state.json"
    r = rg_test("simulate", str(other), "--save-state", str(state), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    r = rg_test("simulate", str(conf), "--state", str(state), "--event", "node-down:node1",
                cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_DATA
    assert r.stdout == ""
    assert r.stderr.splitlines()[-1] == (
        f"rg_test simulate: --state {state}: saved from another configuration: "
        f"nodes nodeA, nodeB are not in {conf} (its nodes: node1, node2)")


def test_state_from_same_configuration_chains(conf: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    r = rg_test("simulate", str(conf), "--event", "node-down:node1",
                "--save-state", str(state), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    r = rg_test("simulate", str(conf), "--state", str(state), "--event", "node-up:node1",
                "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


def test_unwritable_save_state_is_named(conf: Path, tmp_path: Path) -> None:
    r = rg_test("simulate", str(conf), "--save-state", "/nonexistent/s.json", cache=tmp_path)
    assert r.returncode == rg_test_cli.EXIT_DATA
    assert "--save-state /nonexistent/s.json: No such file or directory" in r.stderr


# ------------------------------------------------------------ unexpected errors


def _boom(*_: object, **__: object) -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(("target", "argv"), [
    ("diff", ["delta", "{conf}", "{conf}"]),
    ("generate_grammar", ["schema"]),
    ("test_text", ["test", "{conf}"]),
    ("load_rules", ["rules"]),
])
def test_unexpected_exception_is_one_line_exit_70(
        conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], target: str, argv: list[str]) -> None:
    monkeypatch.setenv("RGMANAGER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(rg_test_cli, target, _boom)
    args = [a.format(conf=conf) for a in argv]
    assert rg_test_cli.main(args) == rg_test_cli.EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == f"rg_test {argv[0]}: internal error: RuntimeError: boom"


def test_unexpected_exception_as_a_process(conf: Path, tmp_path: Path) -> None:
    """A configuration the tools choke on must not look like "warnings" (1)."""
    script = ("import sys; from rgmanager.cli import rg_test as m\n"
              "def boom(*a, **k): raise KeyError('x')\n"
              "m.diff = boom\n"
              "sys.exit(m.main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", script, "delta", str(conf), str(conf)],
                       capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(tmp_path),
                            "PYTHONPATH": str(REPO)})
    assert r.returncode == 70
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == "rg_test delta: internal error: KeyError: 'x'"
    assert os.path.exists(conf)


# ------------------------------------------- fragments (rgmanager's test files)

FRAGMENTS = REPO / "tests" / "scenarios" / "fragments"
# fragment -> (service, what the warning says is missing, resources in start order)
FRAGMENT_CASES = {
    "test01-script.conf": ("test1", "name, config_version and clusternodes",
                           ["service:test1", "script:true-init"]),
    "test02-nested.conf": ("test2", "name, config_version and clusternodes",
                           ["service:test2", "script:outer", "script:inner", "script:side"]),
    "test03-domain.conf": ("test3", "name, config_version and clusternodes",
                           ["service:test3", "script:one", "script:two"]),
    "test04-named.conf": ("test4", "clusternodes", ["service:test4", "script:solo"]),
}


def test_every_fragment_is_covered() -> None:
    assert sorted(p.name for p in FRAGMENTS.glob("*.conf")) == sorted(FRAGMENT_CASES)


@pytest.mark.parametrize("name", sorted(FRAGMENT_CASES))
def test_fragment_is_a_warning_naming_what_is_missing(name: str, tmp_path: Path) -> None:
    _, missing, _ = FRAGMENT_CASES[name]
    r = rg_test("test", str(FRAGMENTS / name), cache=tmp_path)
    assert r.returncode == EXIT_WARNINGS, r.stderr
    assert f"<cluster> has no {missing}: read as a configuration fragment" in r.stderr
    assert "[W_FRAGMENT]" in r.stderr and "error" not in r.stderr
    assert "=== Resource Tree ===" in r.stdout


@pytest.mark.parametrize("name", sorted(FRAGMENT_CASES))
def test_fragment_services_start_and_stop(name: str, tmp_path: Path) -> None:
    service, _, order = FRAGMENT_CASES[name]
    conf = str(FRAGMENTS / name)
    for op, want in (("start", order), ("stop", order[::-1])):
        r = rg_test("--json", "test", conf, op, "service", service, cache=tmp_path)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)  # --json: stdout is the JSON document alone
        assert data["ok"] is True
        assert [s["resource"] for s in data["steps"]] == want
        assert {s["rc"] for s in data["steps"]} == {0}
    r = rg_test("test", conf, "start", "service", service, cache=tmp_path)
    assert r.stdout.splitlines() == [f"Starting {service}...", f"Start of {service} complete"]


def test_the_daemon_still_requires_a_complete_cluster(rules: RuleSet) -> None:
    with pytest.raises(ConfigError) as err:
        load(FRAGMENTS / "test01-script.conf", rules)
    messages = [r.message for r in err.value.reports]
    assert any("'name'" in m for m in messages)
    assert any("'config_version'" in m for m in messages)
    assert any("<clusternodes>" in m for m in messages)
    loaded = load(FRAGMENTS / "test01-script.conf", rules, allow_fragment=True)
    assert not loaded.config.complete and loaded.config.nodes == ()
    assert [r.code for r in loaded.reports] == ["W_FRAGMENT"]


def test_help_says_what_exit_1_means(tmp_path: Path) -> None:
    r = rg_test("-h", cache=tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "1 the configuration loaded with warnings, e.g. a fragment" in text
    assert "without name, config_version or clusternodes" in text


# ------------------------------------------------------- secrets stay hidden

SECRET_CONF = """<?xml version="1.0"?>
<cluster name="c" config_version="1">
  <clusternodes><clusternode name="node1" nodeid="1"/></clusternodes>
  <rm>
    <service name="files">
      <netfs name="share" host="srv" export="/x" mountpoint="/mnt/share" fstype="cifs"
             options="username=bob,password={secret},vers=3.0"/>
    </service>
  </rm>
</cluster>
"""


def test_rg_test_never_prints_a_password(tmp_path: Path) -> None:
    one, two = tmp_path / "one.conf", tmp_path / "two.conf"
    one.write_text(SECRET_CONF.format(secret="hunter22"))
    two.write_text(SECRET_CONF.format(secret="hunter33"))
    runs = [["test", str(one)], ["--json", "test", str(one)],
            ["delta", str(one), str(two)], ["--json", "delta", str(one), str(two)],
            ["noop", str(one), "start", "service", "files"]]
    for argv in runs:
        r = rg_test(*argv, cache=tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode in (0, EXIT_WARNINGS), (argv, r.stderr)
        assert "hunter" not in out, argv
        if argv[-2:] != ["service", "files"]:
            assert "password=********" in out, argv
    assert "username=bob" in rg_test("test", str(one), cache=tmp_path).stdout


def test_config_model_repr_hides_secrets(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGMANAGER_CACHE_DIR", str(tmp_path))
    conf = tmp_path / "c.conf"
    conf.write_text(SECRET_CONF.format(secret="hunter22"))
    loaded = load(conf, load_rules(default_agent_dirs([])))
    assert "hunter22" not in repr(loaded.config)
    assert redact_value("passwd", "x") == "********"
    assert redact({"options": "pass=abc,ro", "name": "a=b"}) == {"options": "pass=********,ro",
                                                                 "name": "a=b"}
