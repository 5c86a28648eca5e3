"""A reload that changes only a service's policy attributes restarts nothing.

``rg_test delta`` (the real command, real agents) shows a reconfig and no
stop/start; a running manager applies such a reload without touching the
service's resources, and the new policy is the one in force afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgmanager.agents.discovery import load_rules
from rgmanager.cluster.local import LocalCluster
from rgmanager.loader import load
from rgmanager.manager import Manager
from rgmanager.status_view import ServiceView

from .manager_helpers import cluster_conf, script, starts, wait_for, write_lsb

RULES = load_rules()


def conf_text(lsb: Path, policy: str, version: int) -> str:
    domains = ('<failoverdomains><failoverdomain name="d1"><failoverdomainnode name="node1"/>'
               '</failoverdomain></failoverdomains>')
    body = f'{domains}<service name="web" {policy}>{script("app", lsb)}</service>'
    return cluster_conf(body).replace('config_version="1"', f'config_version="{version}"')


def test_rg_test_delta_policy_change_has_no_stop_or_start(tmp_path: Path) -> None:
    lsb = write_lsb(tmp_path)
    old, new = tmp_path / "old.conf", tmp_path / "new.conf"
    old.write_text(conf_text(lsb, 'recovery="restart"', 1))
    new.write_text(conf_text(lsb, 'recovery="relocate" domain="d1" autostart="0"', 2))
    r = subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", "delta", str(old),
                        str(new)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RGMANAGER_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[reconfig] service:web" in r.stdout
    assert "[stop]" not in r.stdout and "[start]" not in r.stdout
    for line in ("service:web: recovery: restart -> relocate", "service:web: domain: None -> d1",
                 "service:web: autostart: 1 -> 0"):
        assert line in r.stdout, r.stdout


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def running(tmp_path: Path, state_dir: Path) -> Iterator[tuple[Manager, Path, Path]]:
    lsb = write_lsb(tmp_path)
    conf = tmp_path / "cluster.conf"
    conf.write_text(conf_text(lsb, 'recovery="restart"', 1))
    m = Manager(load(conf, RULES), LocalCluster("node1"),
                extra_env={"HA_RSCTMP": str(state_dir)})
    m.start()
    try:
        yield m, conf, lsb
    finally:
        m.shutdown(stop_services=True)


def web(m: Manager) -> ServiceView:
    return next(s for s in m.status()["services"] if s["name"] == "service:web")


def test_reload_of_policy_keeps_service_running_and_applies_it(
        running: tuple[Manager, Path, Path], state_dir: Path) -> None:
    m, conf, lsb = running
    assert wait_for(lambda: web(m)["state"] == "started" and m.wait_quiet(5))
    assert starts(state_dir, "app") == 1
    marker = state_dir / "app.on"
    before = marker.stat().st_ino

    conf.write_text(conf_text(lsb, 'recovery="disable" domain="d1" max_restarts="2" '
                              'restart_expire_time="60"', 2))
    done = m.reload(load(conf, RULES))
    assert m.wait_quiet(10)
    assert not any("failed" in line for line in done), done
    # Nothing was stopped or started: same marker file, one start, no stop.
    assert web(m)["state"] == "started" and web(m)["owner"] == "node1"
    assert marker.stat().st_ino == before
    assert (state_dir / "app.log").read_text().split() == ["start"]

    # The new policy is in force: a failure now disables instead of restarting.
    marker.unlink()
    assert wait_for(lambda: web(m)["state"] == "disabled"), m.history
    assert starts(state_dir, "app") == 1
    assert any("recovery=disable" in h for h in m.history), m.history
