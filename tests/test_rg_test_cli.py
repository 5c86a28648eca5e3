"""rg_test as administrators run it: real agents' rules, exact output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rgmanager.errors import EXIT_ERRORS, EXIT_OK, EXIT_WARNINGS

REPO = Path(__file__).resolve().parents[1]

CONF = """<?xml version="1.0"?>
<cluster name="c" config_version="{version}">
  <clusternodes>
    <clusternode name="node1" nodeid="1"/>
    <clusternode name="node2" nodeid="2"/>
  </clusternodes>
  <rm>
    <resources>
      <fs name="mount1" mountpoint="/mnt/a" device="/dev/sdb1"/>
    </resources>
    <service name="web">
      <script name="app" file="/etc/init.d/app"/>
      <ip address="10.9.9.9"/>
      <fs ref="mount1">
        <fs name="mount2" mountpoint="/mnt/a/b" device="/dev/sdb2"/>
      </fs>
    </service>
    {extra}
  </rm>
</cluster>
"""


def rg_test(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(cache)})


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    p = tmp_path / "cluster.conf"
    p.write_text(CONF.format(version=1, extra=""))
    return p


def test_noop_start_prints_exact_order(conf: Path, tmp_path: Path) -> None:
    r = rg_test("noop", str(conf), "start", "service", "web", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "Starting web...\n"
        "[start] service:web\n"
        "[start] fs:mount1\n"
        "[start] fs:mount2\n"
        "[start] ip:10.9.9.9\n"
        "[start] script:app\n"
        "Start of web complete\n")


def test_noop_stop_prints_exact_order(conf: Path, tmp_path: Path) -> None:
    r = rg_test("noop", str(conf), "stop", "service", "web", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "Stopping web...\n"
        "[stop] script:app\n"
        "[stop] ip:10.9.9.9\n"
        "[stop] fs:mount2\n"
        "[stop] fs:mount1\n"
        "[stop] service:web\n"
        "Stop of web complete\n")


def test_noop_json(conf: Path, tmp_path: Path) -> None:
    r = rg_test("--json", "noop", str(conf), "start", "service", "web", cache=tmp_path)
    data = json.loads(r.stdout)
    assert [s["resource"] for s in data["steps"]] == [
        "service:web", "fs:mount1", "fs:mount2", "ip:10.9.9.9", "script:app"]


def test_test_prints_resources_and_trees(conf: Path, tmp_path: Path) -> None:
    r = rg_test("test", str(conf), cache=tmp_path)
    assert r.returncode == EXIT_OK, r.stderr
    assert "=== Resources List ===" in r.stdout and "=== Resource Tree ===" in r.stdout
    assert "Resource type: fs\n" in r.stdout  # the <resources> entry: not INLINE
    assert 'mountpoint = "/mnt/a/b";' in r.stdout
    data = json.loads(rg_test("--json", "test", str(conf), cache=tmp_path).stdout)
    assert [c["name"] for c in data["services"][0]["children"]] == [
        "script:app", "ip:10.9.9.9", "fs:mount1"]


def test_errors_and_warnings_exit_differently(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text(CONF.format(version=1, extra='<service name="web"/>'))
    r = rg_test("test", str(bad), cache=tmp_path)
    assert r.returncode == EXIT_ERRORS
    assert "Traceback" not in r.stderr
    assert f"{bad}:18: <service>: error: duplicate service name" in r.stderr
    warn = tmp_path / "warn.conf"
    warn.write_text(CONF.format(version=1, extra='<service name="b" max_restarts="2"/>'))
    r = rg_test("test", str(warn), cache=tmp_path)
    assert r.returncode == EXIT_WARNINGS
    assert "warning: max_restarts=2 without restart_expire_time" in r.stderr
    r = rg_test("--json", "test", str(bad), cache=tmp_path)
    assert r.returncode == EXIT_ERRORS
    assert json.loads(r.stdout)["reports"][0]["line"] == 18


@pytest.mark.parametrize("text", [
    "<cluster", "not xml at all", "<?xml version='1.0'?><other/>",
    "<cluster name='c' config_version='x'><clusternodes/></cluster>",
])
def test_garbage_never_tracebacks(tmp_path: Path, text: str) -> None:
    p = tmp_path / "g.conf"
    p.write_text(text)
    r = rg_test("test", str(p), cache=tmp_path)
    assert r.returncode == EXIT_ERRORS
    assert "Traceback" not in r.stderr and f"{p}:" in r.stderr


def test_delta_lists_changes(conf: Path, tmp_path: Path) -> None:
    new = tmp_path / "new.conf"
    new.write_text(CONF.format(version=2, extra='<service name="db"/>').replace(
        "/mnt/a/b", "/mnt/a/c"))
    r = rg_test("delta", str(conf), str(new), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "service:db" in r.stdout.split("=== Services added (need start) ===")[1]
    assert "fs:mount2: mountpoint: /mnt/a/b -> /mnt/a/c" in r.stdout
    data = json.loads(rg_test("--json", "delta", str(conf), str(new), cache=tmp_path).stdout)
    changed = data["services"]["changed"][0]
    assert changed["name"] == "service:web"
    assert changed["stop"] == ["fs:mount2"] and changed["start"] == ["fs:mount2"]


def test_rules_lists_levels(tmp_path: Path) -> None:
    r = rg_test("rules", cache=tmp_path)
    assert 'Resource Rules for "service"' in r.stdout
    assert "  lvm [ startlevel = 1 stoplevel = 9 ] " in r.stdout
    data = json.loads(rg_test("--json", "rules", cache=tmp_path).stdout)
    assert {"service", "fs", "ip", "script"} <= {r["type"] for r in data}


def test_real_start_stop_of_demo_script(tmp_path: Path) -> None:
    script = tmp_path / "lsb"
    marker = tmp_path / "running"
    script.write_text(f"""#!/bin/sh
case "$1" in
start) touch {marker} ;;
stop) rm -f {marker} ;;
status) [ -e {marker} ] && exit 0; exit 3 ;;
esac
""")
    script.chmod(0o755)
    conf = tmp_path / "c.conf"
    conf.write_text(CONF.format(version=1, extra="").replace(
        """<script name="app" file="/etc/init.d/app"/>
      <ip address="10.9.9.9"/>
      <fs ref="mount1">
        <fs name="mount2" mountpoint="/mnt/a/b" device="/dev/sdb2"/>
      </fs>""", f'<script name="app" file="{script}"/>'))
    r = rg_test("test", str(conf), "start", "service", "web", cache=tmp_path)
    assert r.returncode == 0 and "Start of web complete" in r.stdout, r.stdout + r.stderr
    assert marker.exists()
    r = rg_test("test", str(conf), "status", "service", "web", cache=tmp_path)
    assert "Status of web is good" in r.stdout
    marker.unlink()
    r = rg_test("test", str(conf), "status", "service", "web", cache=tmp_path)
    assert r.returncode == 1 and "Status check of web failed" in r.stdout
    r = rg_test("test", str(conf), "stop", "service", "web", cache=tmp_path)
    assert r.returncode == 0 and "Stop of web complete" in r.stdout
