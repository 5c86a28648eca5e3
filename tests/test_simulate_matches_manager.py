"""`rg_test simulate` tells the truth: its predicted table equals what three
real managers on the `sim` backend (with real agents) end up with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rgmanager.planner import PlanModel
from rgmanager.planner.dryrun import dry_run, initial

from .manager_helpers import script, write_lsb
from .test_manager_sim import NODES, Cluster3

DOMAIN = """<failoverdomains>
  <failoverdomain name="d" ordered="1">
    <failoverdomainnode name="node3" priority="1"/>
    <failoverdomainnode name="node2" priority="2"/>
  </failoverdomain>
</failoverdomains>"""

EVENTS = ["node-down:node3", "fail:service:db", "fail:service:db", "node-up:node3",
          "relocate:web:node2", "disable:db", "enable:db", "node-down:node1"]


def body(lsb: Path) -> str:
    return (DOMAIN
            + f'<service name="db" recovery="restart" max_restarts="1" '
              f'restart_expire_time="600">{script("db", lsb)}</service>'
            + f'<service name="solo" exclusive="1">{script("solo", lsb)}</service>'
            + f'<service name="web" domain="d">{script("web", lsb)}</service>')


def real_apply(c: Cluster3, event: str) -> None:
    kind, _, rest = event.partition(":")
    if kind == "node-down":
        c.crash(rest)
    elif kind == "node-up":
        c.restart(rest)
    elif kind == "fail":
        c.fail(rest)
    else:
        import threading
        name, _, node = rest.partition(":")
        origin = c.managers[sorted(c.managers)[0]]
        th = threading.Thread(target=origin.request, args=(kind, name, node or None))
        th.start()
        while th.is_alive():
            c.settle()
            th.join(0.05)
        c.settle()


def simple(table: dict[str, tuple[str, str | None]]) -> dict[str, tuple[str, str | None]]:
    return dict(sorted(table.items()))


def test_simulate_predicts_the_real_cluster(tmp_path: Path) -> None:
    lsb = write_lsb(tmp_path)
    c = Cluster3(tmp_path, body(lsb))
    try:
        model = PlanModel.build(c.loaded.config, c.loaded.forest)
        table, members = initial(model, NODES)
        predicted = {s.name: (s.state.value, s.owner) for s in table}
        assert simple(c.table()) == simple(predicted)
        for i, event in enumerate(EVENTS):
            real_apply(c, event)
            result = dry_run(model, table, members, EVENTS[: i + 1])
            predicted = {s.name: (s.state.value, s.owner) for s in result.table}
            assert simple(c.table()) == simple(predicted), f"after {event}"
            for node in c.managers:  # and every live manager agrees
                assert c.table(node) == c.table()
    finally:
        c.close()


@pytest.mark.parametrize("events", [EVENTS])
def test_cli_json_matches(tmp_path: Path, events: list[str]) -> None:
    lsb = write_lsb(tmp_path)
    c = Cluster3(tmp_path, body(lsb))
    try:
        for e in events:
            real_apply(c, e)
        conf = tmp_path / "cluster.conf"
        args = [a for e in events for a in ("--event", e)]
        r = subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", "--json",
                            "simulate", str(conf), *args], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        predicted = {k: (v["state"], v["owner"]) for k, v in data["table"].items()}
        assert simple(c.table()) == simple(predicted)
    finally:
        c.close()
