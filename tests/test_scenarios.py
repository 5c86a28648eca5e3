"""Golden scenarios for the planner (Pacemaker's scheduler regression tests in spirit).

Each ``tests/scenarios/*.scenario`` holds a config, an optional starting
state, events and the exact ``rg_test simulate --explain`` text they produce.
Any change in placement or recovery shows up as a diff of readable text.
After an intended change, regenerate and review the diff::

    RGMANAGER_REGENERATE=1 .venv/bin/pytest tests/test_scenarios.py

File format (sections start with ``--- NAME``; the header is everything before
the first section)::

    # what the scenario shows (any number of comment lines; "# SUSPECT:" marks
    # behaviour a reviewer questioned)
    config: NAME.conf          (tests/scenarios/configs/NAME.conf), or a
    --- config                 section holding a whole cluster.conf
    explain: no                (optional; candidate lines are shown by default)
    auto-fence: no             (optional; lost nodes are fenced at once by default,
                                as rg_test simulate --no-auto-fence turns off)
    fencing: no                (optional; plan without fencing, as the daemon does
                                until it fences: rg_test simulate --no-fencing)
    --- state                  (optional; default: all nodes up, services placed)
    members: node1 node2       (quorum computed from the config unless
    quorate: no                 given)
    service:web started node1 [frozen] [partial] [last=NODE]   (owner "-" for none)
    --- events
    node-down:node1            (one per line, the syntax of --event)
    --- expected
    ...                        (generated)

The CLI tests at the bottom run the real ``rg_test`` (real agents), so their
configs use only ``service`` and ``script``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import pytest

from rgmanager.cli.render import dry_run_json, dry_run_text
from rgmanager.cluster.base import Membership
from rgmanager.loader import load
from rgmanager.planner import Event, Plan, PlanModel, ServiceSpec, Start, core
from rgmanager.planner.dryrun import Quorum, dry_run, initial, state_from_json, state_to_json
from rgmanager.planner.dryrun_lang import parse_event, resolve_resource
from rgmanager.state import ServiceState, State, Table

from .seed_rules import seed_rules

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "scenarios"
CONFIGS = SCENARIOS / "configs"
REGENERATE = os.environ.get("RGMANAGER_REGENERATE", "") not in ("", "0")


# -- scenario files -------------------------------------------------------------
@dataclass
class Scenario:
    path: Path
    header: list[str]
    sections: dict[str, list[str]]
    order: list[str]

    @classmethod
    def read(cls, path: Path) -> Scenario:
        header: list[str] = []
        sections: dict[str, list[str]] = {}
        order: list[str] = []
        current = header
        for line in path.read_text().splitlines():
            if line.startswith("--- ") and line[4:].strip() in (
                    "config", "state", "events", "expected"):
                name = line[4:].strip()
                if name in sections:
                    raise ValueError(f"{path.name}: section {name} given twice")
                current = sections[name] = []
                order.append(name)
            else:
                current.append(line)
        return cls(path, header, sections, order)

    def option(self, key: str) -> str | None:
        for line in self.header:
            k, sep, v = line.partition(":")
            if sep and not line.startswith("#") and k.strip() == key:
                return v.strip()
        return None

    def config_path(self, tmp: Path) -> Path:
        if "config" in self.sections:
            p = tmp / f"{self.path.stem}.conf"
            p.write_text("\n".join(self.sections["config"]).strip() + "\n")
            return p
        name = self.option("config")
        if not name:
            raise ValueError(f"{self.path.name}: no 'config:' line and no '--- config' section")
        return CONFIGS / name

    def events(self) -> list[str]:
        return [e.strip() for e in self.sections.get("events", [])
                if e.strip() and not e.strip().startswith("#")]

    def write_expected(self, text: str) -> None:
        out = list(self.header)
        for name in self.order:
            if name != "expected":
                out += [f"--- {name}", *self.sections[name]]
        while out and not out[-1].strip():
            out.pop()
        out += ["--- expected", text.rstrip("\n")]
        self.path.write_text("\n".join(out) + "\n")


def parse_state(lines: list[str], model: PlanModel, quorum: Quorum
                ) -> tuple[Table, Membership]:
    """The compact ``--- state`` format (or the --state JSON when it starts with '{')."""
    body = "\n".join(lines).strip()
    if body.startswith("{"):
        table, membership, _ = state_from_json(json.loads(body))
        return table, membership
    members: tuple[str, ...] = tuple(sorted(model.node_ids, key=model.nodeid))
    quorate: bool | None = None
    states = []
    for line in body.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("members:"):
            members = tuple(line.removeprefix("members:").split())
            continue
        if line.startswith("quorate:"):
            quorate = line.removeprefix("quorate:").strip() in ("yes", "1", "true")
            continue
        name, state, owner, *flags = line.split()
        ss = ServiceState(name if name.startswith("service:") else f"service:{name}",
                          State(state), None if owner == "-" else owner, last_transition=1.0)
        for flag in flags:
            if flag == "frozen":
                ss = replace(ss, frozen=True)
            elif flag == "partial":
                ss = replace(ss, partial=True)
            elif flag.startswith("last="):
                ss = replace(ss, last_owner=flag.removeprefix("last="))
            else:
                raise ValueError(f"state line {line!r}: unknown flag {flag!r}")
        states.append(ss)
    q = quorum.quorate(members) if quorate is None else quorate
    return Table().put(*states), Membership(members, q)


def run_scenario(sc: Scenario, tmp: Path) -> str:
    loaded = load(sc.config_path(tmp), seed_rules())
    # As rg_test simulate plans (--no-fencing: "fencing: no").
    model = loaded.plan_model(fencing=(sc.option("fencing") or "yes") != "no")
    quorum = Quorum.from_config(loaded.config)
    if "state" in sc.sections:
        table, membership = parse_state(sc.sections["state"], model, quorum)
    else:
        table, membership = initial(model, [n.name for n in loaded.config.nodes],
                                    quorum=quorum)
    explain = (sc.option("explain") or "yes") != "no"
    auto_fence = (sc.option("auto-fence") or "yes") != "no"
    result = dry_run(model, table, membership, sc.events(), explain, quorum=quorum,
                     auto_fence=auto_fence)
    assert not result.livelock, f"{sc.path.name}: livelock"
    return dry_run_text(result)


SCENARIO_FILES = sorted(SCENARIOS.glob("*.scenario"))


def test_there_are_scenarios() -> None:
    assert len(SCENARIO_FILES) >= 30


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_scenario(path: Path, tmp_path: Path) -> None:
    sc = Scenario.read(path)
    assert sc.header and sc.header[0].startswith("# "), "start with '# description'"
    assert sc.events(), "a scenario needs events"
    got = run_scenario(sc, tmp_path)
    if REGENERATE:
        sc.write_expected(got)
        return
    assert "expected" in sc.sections, \
        f"{path.name}: no '--- expected'; run with RGMANAGER_REGENERATE=1 and review"
    expected = "\n".join(sc.sections["expected"]).strip("\n") + "\n"
    assert got == expected


# -- dry run units ----------------------------------------------------------------
CONF = """<?xml version="1.0"?>
<cluster name="sim" config_version="1">
  <clusternodes>
    <clusternode name="node1" nodeid="1"/>
    <clusternode name="node2" nodeid="2"/>
    <clusternode name="node3" nodeid="3"/>
  </clusternodes>
  <rm>
    <failoverdomains>
      <failoverdomain name="pref1" ordered="1">
        <failoverdomainnode name="node1" priority="1"/>
        <failoverdomainnode name="node2" priority="2"/>
      </failoverdomain>
    </failoverdomains>
    <service name="web" domain="pref1">
      <script name="app" file="/etc/init.d/app"/>
    </service>
    <service name="db" autostart="0">
      <script name="dbd" file="/etc/init.d/dbd"/>
    </service>
  </rm>
</cluster>
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    p = tmp_path / "cluster.conf"
    p.write_text(CONF)
    return p


@pytest.fixture
def model(conf: Path) -> PlanModel:
    loaded = load(conf, seed_rules())
    return loaded.plan_model(fencing=True)


@pytest.mark.parametrize("text, message", [
    ("", "expected one of"),
    ("explode:node1", "expected one of"),
    ("node-down", "expected one of"),
    ("node-down:", "nothing after"),
    ("node-down:node1:node2", "expected node-down:NODE"),
    ("relocate:web:node2:node3", "takes only a service"),
    ("disable:web:node2", "takes only a service"),
    ("enable::node2", "a service name is required"),
    ("start-fail:web", "expected start-fail:SERVICE:NODE"),
    ("wait:soon", "expected wait:SECONDS"),
    ("enable:web@", "empty origin"),
])
def test_parse_event_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(text)


def test_parse_event_forms() -> None:
    ev = parse_event("relocate:service:web:node2@node3")
    assert (ev.kind, ev.service, ev.node, ev.origin) == ("relocate", "service:web", "node2",
                                                         "node3")
    assert parse_event("enable:web:-F").follow_domain
    assert parse_event("wait:5m").seconds == 300
    assert parse_event("wait:2.5").seconds == 2.5
    assert parse_event("fail:service:web/script:app").resource == "service:web/script:app"


def test_resolve_resource(model: PlanModel) -> None:
    assert resolve_resource(model, "web") == ("service:web", "")
    assert resolve_resource(model, "script:app") == ("service:web", "service:web/script:app")
    assert resolve_resource(model, "service:db/script:dbd") == ("service:db",
                                                               "service:db/script:dbd")
    with pytest.raises(ValueError, match="no service or resource"):
        resolve_resource(model, "ip:10.0.0.1")


def test_unknown_node_rejected_before_anything_runs(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    with pytest.raises(ValueError, match="not a configured node"):
        dry_run(model, table, members, ["node-down:node1", "node-down:node9"])


def test_initial_places_autostart_services(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    assert members == Membership(("node1", "node2", "node3"), True, 1)
    assert (table.get("service:web").state, table.get("service:web").owner) == (
        State.STARTED, "node1")
    assert table.get("service:db").state == State.DISABLED


def test_livelock_guard(model: PlanModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A planner that sends a service back and forth for ever (the bug the
    guard is there for) ends the event as a livelock, however many steps a
    legitimate event may take: the state repeats."""
    table, members = initial(model, ["node1", "node2", "node3"])
    name = "service:web"

    def flip_flop(model: PlanModel, table: Table, membership: Membership,
                  event: Event) -> Plan:
        ss = table.get(name)
        node = "node3" if ss.owner == "node2" else "node2"
        new = ss.moved(State.STARTING, event.time, owner=node)
        return Plan(table.put(new), [Start(name, node)], changed={name})

    monkeypatch.setattr(core, "plan", flip_flop)
    result = dry_run(model, table, members, ["node-down:node1"])
    assert result.livelock
    assert "livelock" in result.steps[0].of("note")[-1]
    assert dry_run_json(result)["livelock"] is True


def _flat_model(services: int) -> PlanModel:
    specs = {f"service:s{i:05d}": ServiceSpec(f"service:s{i:05d}") for i in range(services)}
    return PlanModel(MappingProxyType(specs),
                     MappingProxyType({"node1": 1, "node2": 2, "node3": 3}), fencing=True)


def test_initial_places_more_than_a_thousand_services() -> None:
    """The dry run had a 1,000-step limit per event: the initial placement of
    1,001 services (1,002 planner steps) ended as a 'livelock' with the last
    service still starting. There is no limit now."""
    model = _flat_model(1001)
    table, members = initial(model, ["node1", "node2", "node3"])
    assert len(table.services) == 1001
    assert {ss.state for ss in table} == {State.STARTED}
    result = dry_run(model, table, members, ["node-down:node1"])
    assert not result.livelock
    assert {ss.state for ss in result.table} == {State.STARTED}
    assert {ss.owner for ss in result.table} == {"node2"}  # no domain: lowest node id


# -- fencing in the dry run -------------------------------------------------------------
def test_lost_node_is_fenced_automatically(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    result = dry_run(model, table, members, ["node-down:node1"])
    notes = result.steps[0].of("note")
    assert "sim: node1 fenced (dry run: fencing assumed to succeed)" in notes
    fenced_at = notes.index("sim: node1 fenced (dry run: fencing assumed to succeed)")
    starting = notes.index("service:web: starting on node2 (taking over from fenced member "
                           "node1)")
    assert fenced_at < starting  # fenced, then recovered
    assert result.table.awaiting_fence == ()
    assert (result.table.get("service:web").state, result.table.get("service:web").owner) \
        == (State.STARTED, "node2")


def test_without_auto_fence_services_wait_for_fenced_event(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    result = dry_run(model, table, members, ["node-down:node1", "enable:web"],
                     auto_fence=False)
    web = result.table.get("service:web")
    assert (web.state, web.owner, web.last_owner) == (State.RECOVERING, None, "node1")
    assert web.reason == "awaiting fence of node1"
    assert result.table.awaiting_fence == ("node1",)
    assert result.steps[1].of("action") == [
        "reply to node2: -6 Temporary failure; try again (service:web waits until node1 is "
        "fenced)"]
    data = dry_run_json(result)
    assert data["awaiting_fence"] == ["node1"]
    assert data["table"]["service:web"]["reason"] == "awaiting fence of node1"
    assert "Awaiting fence: node1" in dry_run_text(result)
    done = dry_run(model, result.table, result.membership, ["fenced:node1"],
                   clock=result.clock, auto_fence=False)
    web = done.table.get("service:web")
    assert (web.state, web.owner, web.reason) == (State.STARTED, "node2", None)
    assert done.table.awaiting_fence == ()


def test_a_node_that_ran_nothing_is_not_awaited(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    result = dry_run(model, table, members, ["node-down:node3"], auto_fence=False)
    assert result.table.awaiting_fence == ()
    assert not any("fence" in n for n in result.steps[0].of("note"))


def test_fenced_event_for_a_node_nobody_waits_for_is_a_no_op(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    result = dry_run(model, table, members, ["node-down:node3", "fenced:node3"])
    assert result.steps[1].of("note") == ["node node3 fenced by the dry run; nothing waited "
                                          "for it"]
    assert result.table == dry_run(model, table, members, ["node-down:node3"]).table


def test_quorum_from_votes() -> None:
    q = Quorum({"a": 1, "b": 1, "c": 1})
    assert q.quorate(["a", "b"]) and not q.quorate(["a"])
    assert Quorum({"a": 1, "b": 1}, two_node=True).quorate(["b"])
    assert Quorum({"a": 3, "b": 1, "c": 1}).quorate(["a"])


def test_state_json_round_trip_continues_where_it_stopped(model: PlanModel) -> None:
    table, members = initial(model, ["node1", "node2", "node3"])
    first = dry_run(model, table, members, ["node-down:node1", "fail:web"])
    saved = json.loads(json.dumps(state_to_json(first.table, first.membership, first.clock)))
    table2, members2, clock = state_from_json(saved)
    assert table2 == first.table and members2.members == first.membership.members
    both = dry_run(model, table, members, ["node-down:node1", "fail:web", "node-up:node1"])
    chained = dry_run(model, table2, members2, ["node-up:node1"], clock=clock or 0)
    assert chained.table == both.table


def test_state_from_json_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="state file"):
        state_from_json({"table": {}})


# -- the CLI (real agents) ------------------------------------------------------------
def rg_test(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(cache)})


def test_cli_text(conf: Path, tmp_path: Path) -> None:
    r = rg_test("simulate", str(conf), "--event", "node-down:node1", "--explain",
                cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "=== Starting table ===\n"
        "  service:db   disabled  -\n"
        "  service:web  started   node1\n"
        "  Members: node1 node2 node3 (quorate)\n"
        "=== Event: node-down:node1 ===\n"
        "  * node node1 left the cluster\n"
        "  * node node1 must be fenced before its services run elsewhere (service:web)\n"
        "  * service:web: recovering once node1 is fenced\n"
        "  * sim: node1 fenced (dry run: fencing assumed to succeed)\n"
        "  * node node1 fenced by the dry run\n"
        "  * service:web: starting on node2 (taking over from fenced member node1)\n"
        "  -> start service:web on node2 (recover)\n"
        "  service:web: node1: ILLEGAL (offline) -> not eligible\n"
        "  service:web: node2: BEST (domain pref1 priority 2, best online) -> chosen\n"
        "  service:web: node3: GOOD (not in domain pref1) -> eligible\n"
        "  * service:web: started on node2\n"
        "=== Resulting table ===\n"
        "  service:db   disabled  -\n"
        "  service:web  started   node2\n"
        "  Members: node2 node3 (quorate)\n")


def test_cli_json_and_state_chain(conf: Path, tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    r = rg_test("simulate", str(conf), "--event", "node-down:node1", "--save-state",
                str(saved), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    r = rg_test("--json", "simulate", str(conf), "--state", str(saved), "--event",
                "node-up:node1", "--event", "enable:db:node3", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["members"] == ["node1", "node2", "node3"] and data["quorate"] is True
    assert data["table"]["service:web"] == {"state": "started", "owner": "node1",
                                            "last_owner": "node2", "frozen": False,
                                            "partial": False}
    assert data["table"]["service:db"]["owner"] == "node3"
    assert [s["event"] for s in data["steps"]] == ["node-up:node1", "enable:db:node3"]
    assert "start service:db on node3" in data["steps"][1]["actions"]
    assert data["steps"][0]["explain"] == []


@pytest.mark.parametrize("args, message, code", [
    # 2 means "configuration rejected": a bad command line is a usage error
    # (64) and an unusable state file a data error (65).
    (("--event", "node-down"), "bad event 'node-down'", 64),
    (("--event", "fail:script:nosuch"), "no service or resource", 64),
    (("--state", "/nonexistent/state.json"), "No such file", 65),
])
def test_cli_errors_exit_codes(conf: Path, tmp_path: Path, args: tuple[str, ...],
                               message: str, code: int) -> None:
    r = rg_test("simulate", str(conf), *args, cache=tmp_path)
    assert r.returncode == code
    assert message in r.stderr and r.stdout == ""


def test_cli_config_error_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text(CONF.replace('<service name="db" autostart="0">',
                                '<service name="web">'))
    r = rg_test("simulate", str(bad), "--event", "node-down:node1", cache=tmp_path)
    assert r.returncode == 2 and r.stdout == ""


def test_every_planner_op_is_an_event(model: PlanModel) -> None:
    """The dry run's request kinds are the planner's ops (planner.events.Op), so a
    new op cannot be missing from ``--event``."""
    from rgmanager.planner.events import REQUEST_OPS

    for op in REQUEST_OPS:
        assert parse_event(f"{op}:web").kind == op
    ev = parse_event("migrate:web:node2")
    assert (ev.service, ev.node) == ("service:web", "node2")
    table, members = initial(model, ["node1", "node2", "node3"])
    result = dry_run(model, table, members, ["migrate:web:node2"])
    assert result.steps[0].of("action") == ["reply to node1: -8 Invalid operation for resource"]
    assert result.table.get("service:web").owner == "node1"


def test_cli_no_auto_fence_shows_the_waiting_state(conf: Path, tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    r = rg_test("simulate", str(conf), "--no-auto-fence", "--event", "node-down:node1",
                "--save-state", str(saved), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(
        "=== Resulting table ===\n"
        "  service:db   disabled    -\n"
        "  service:web  recovering  -  last owner node1, awaiting fence of node1\n"
        "  Members: node2 node3 (quorate)\n"
        "  Awaiting fence: node1\n")
    assert "dry run: fencing assumed" not in r.stdout
    # The saved state keeps the wait; a later fenced:node1 ends it.
    r = rg_test("--json", "simulate", str(conf), "--state", str(saved), "--event",
                "fenced:node1", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["awaiting_fence"] == []
    assert data["table"]["service:web"]["owner"] == "node2"
    assert "reason" not in data["table"]["service:web"]


def test_cli_no_fencing_plans_as_the_daemon_does_today(conf: Path, tmp_path: Path) -> None:
    r = rg_test("simulate", str(conf), "--no-fencing", "--event", "node-down:node1",
                cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fence" not in r.stdout
    assert "service:web: starting on node2 (taking over from down member node1)" in r.stdout


def test_cli_help_documents_fencing(tmp_path: Path) -> None:
    r = rg_test("simulate", "-h", cache=tmp_path)
    assert r.returncode == 0
    for words in ("--no-auto-fence", "--no-fencing", "fenced:N"):
        assert words in r.stdout
    r = rg_test("-h", cache=tmp_path)
    assert "fencing assumed to succeed" in r.stdout and "--fence-ack" in r.stdout
