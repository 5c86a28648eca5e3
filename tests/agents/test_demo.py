"""The demo service: etc/demo/demo-httpd (the LSB init script), its launcher and
the demo configuration.

Each test runs a copy of the script in its own fake checkout under tmp_path, with
its own port and state directory, so tests never touch a real demo (port 8089)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import AGENT_DIR, REPO, agent_env, needs_root

DEMO = REPO / "etc" / "demo" / "demo-httpd"
LAUNCHER = REPO / "etc" / "demo" / "demo-httpd-launcher"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str = "/") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Checkout:
    root: Path
    script: Path
    port: int
    state: Path

    def run(self, action: str, env: dict[str, str] | None = None,
            settings: bool = True) -> subprocess.CompletedProcess[str]:
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if settings:
            e.update(DEMO_PORT=str(self.port), DEMO_DIR=str(self.state))
        e.update(env or {})
        return subprocess.run([str(self.script), action], env=e, capture_output=True,
                              text=True, timeout=60)

    def pid(self) -> int:
        return int((self.state / "httpd.pid").read_text())


def make_checkout(root: Path) -> Checkout:
    demo_dir = root / "etc" / "demo"
    demo_dir.mkdir(parents=True)
    (root / "resource-agents").mkdir()
    script = demo_dir / "demo-httpd"
    shutil.copy2(DEMO, script)
    return Checkout(root, script, free_port(), root / "state")


def kill_leftovers(marker: str) -> None:
    """Safety net: any process whose command line names our tmp directory."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker.encode() in cmd:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def co(tmp_path: Path) -> Iterator[Checkout]:
    c = make_checkout(tmp_path / "checkout")
    try:
        yield c
    finally:
        c.run("stop")
        kill_leftovers(str(tmp_path))


def test_demo_lifecycle(co: Checkout) -> None:
    assert co.run("status").returncode == 3
    r = co.run("start")
    assert r.returncode == 0, r.stdout + r.stderr
    status, body = get(co.port)
    assert status == 200 and body.startswith("rgmanager-py demo service on ")
    assert get(co.port, "/etc/passwd")[0] == 404  # no files are served
    assert (co.state.stat().st_mode & 0o777) == 0o700
    pid = co.pid()
    assert co.run("status").returncode == 0
    assert co.run("start").returncode == 0 and co.pid() == pid  # idempotent
    assert co.run("stop").returncode == 0
    assert wait_gone(pid)
    assert co.run("status").returncode == 3
    assert co.run("stop").returncode == 0  # idempotent


def test_demo_refuses_a_symlinked_state_dir(co: Checkout, tmp_path: Path) -> None:
    """A state directory planted as a symlink is never used (the log would land in it)."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    victim = target / "httpd.log"
    victim.write_text("root's file\n")
    co.state.symlink_to(target)
    r = co.run("start")
    assert r.returncode != 0 and "symlink" in r.stdout
    assert victim.read_text() == "root's file\n"
    assert sorted(os.listdir(target)) == ["httpd.log"]
    assert co.run("status").returncode == 4


def test_demo_refuses_a_world_writable_state_dir_with_a_symlinked_log(
        co: Checkout, tmp_path: Path) -> None:
    """The old /tmp attack: a pre-created world-writable directory whose httpd.log is a
    symlink to a root file; start must refuse and leave the file alone."""
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    co.state.mkdir()
    co.state.chmod(0o777)
    (co.state / "httpd.log").symlink_to(victim)
    r = co.run("start")
    assert r.returncode != 0 and "mode 0777" in r.stdout
    assert victim.read_text() == "root:secret\n"
    with pytest.raises(OSError):
        get(co.port)


def test_demo_never_writes_through_a_symlinked_log(co: Checkout, tmp_path: Path) -> None:
    """Even inside a private directory, files are opened O_NOFOLLOW."""
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    co.state.mkdir(mode=0o700)
    (co.state / "httpd.log").symlink_to(victim)
    r = co.run("start")
    assert r.returncode != 0
    assert victim.read_text() == "root:secret\n"


@needs_root
def test_demo_refuses_a_state_dir_owned_by_someone_else(co: Checkout) -> None:
    co.state.mkdir(mode=0o700)
    os.chown(co.state, 65534, 65534)  # nobody
    r = co.run("start")
    assert r.returncode != 0 and "owned by uid 65534" in r.stdout
    assert os.listdir(co.state) == []


def test_demo_stop_and_status_ignore_a_forged_pid_file(co: Checkout) -> None:
    """A pid file naming another process: status does not call it running and stop
    does not kill it."""
    victim = subprocess.Popen(["sleep", "300"])
    try:
        co.state.mkdir(mode=0o700)
        (co.state / "httpd.pid").write_text(f"{victim.pid}\n")
        assert co.run("status").returncode == 1  # dead, pid file exists
        assert co.run("stop").returncode == 0
        assert victim.poll() is None and alive(victim.pid)
        assert not (co.state / "httpd.pid").exists()
    finally:
        victim.kill()
        victim.wait()


def test_demo_stop_finds_its_server_without_a_pid_file(co: Checkout) -> None:
    assert co.run("start").returncode == 0
    pid = co.pid()
    (co.state / "httpd.pid").unlink()
    assert co.run("status").returncode == 0  # recognised by its command line
    assert co.run("stop").returncode == 0
    assert wait_gone(pid)


def test_demo_serves_no_files_through_a_planted_web_root(co: Checkout, tmp_path: Path) -> None:
    """The old script served (and wrote index.html into) $DEMO_DIR/www, symlinks followed."""
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "secret.txt").write_text("TOP-SECRET\n")
    co.state.mkdir(mode=0o700)
    (co.state / "www").symlink_to(secret_dir)
    assert co.run("start").returncode == 0
    status, body = get(co.port, "/secret.txt")
    assert status == 404 and "TOP-SECRET" not in body
    assert get(co.port, "/www/secret.txt")[0] == 404
    assert sorted(os.listdir(secret_dir)) == ["secret.txt"]  # nothing written there


def test_demo_paths_are_per_checkout(tmp_path: Path) -> None:
    """Two checkouts get different default state directories; the port defaults to 8089."""
    a = make_checkout(tmp_path / "a")
    b = make_checkout(tmp_path / "b")
    info = {}
    for c in (a, b):
        r = c.run("info", settings=False)
        assert r.returncode == 0, r.stdout + r.stderr
        info[c.root] = dict(line.split("  #")[0].split("=", 1) for line in r.stdout.splitlines())
    assert info[a.root]["state_dir"] != info[b.root]["state_dir"]
    assert info[a.root]["port"] == info[b.root]["port"] == "8089"
    assert info[a.root]["checkout"] == str(a.root)
    if os.geteuid() == 0:
        assert info[a.root]["state_dir"].startswith("/run/rgmanager-py-demo.")
    assert "/tmp/rgmanager-demo" not in info[a.root]["state_dir"]


def test_demo_settings_from_the_checkout_conf_file(co: Checkout) -> None:
    """The daemon's environment does not reach the script: the conf file does."""
    (co.root / "etc" / "demo" / "demo-httpd.conf").write_text(
        f"# comment\nDEMO_PORT={co.port}\nDEMO_DIR={co.state}\n")
    r = co.run("start", settings=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert get(co.port)[0] == 200
    assert co.run("status", settings=False).returncode == 0
    assert co.run("stop", settings=False).returncode == 0
    (co.root / "etc" / "demo" / "demo-httpd.conf").write_text("rm -rf /\n")
    r = co.run("start", settings=False)
    assert r.returncode == 1 and "expected DEMO_PORT" in r.stdout


def test_demo_under_the_script_agent_via_the_launcher(co: Checkout, rsctmp: Path) -> None:
    """What rgmanager runs: the script agent -> the installed launcher -> this checkout's
    demo-httpd, with the agent's environment (settings from the conf file)."""
    (co.root / "etc" / "demo" / "demo-httpd.conf").write_text(
        f"DEMO_PORT={co.port}\nDEMO_DIR={co.state}\n")
    params = {"name": "httpd", "file": str(LAUNCHER)}

    def agent(action: str) -> subprocess.CompletedProcess[str]:
        env = agent_env(rsctmp, params, OCF_ROOT=str(co.root / "resource-agents"),
                        OCF_RESOURCE_INSTANCE="script:httpd", OCF_RESOURCE_TYPE="script")
        return subprocess.run([str(AGENT_DIR / "script"), action], env=env,
                              capture_output=True, text=True, timeout=60)

    r = agent("start")
    assert r.returncode == 0, r.stderr
    assert get(co.port)[0] == 200
    assert agent("status").returncode == 0
    pid = co.pid()
    os.kill(pid, signal.SIGKILL)  # the demo's "kill it and watch it come back"
    assert wait_gone(pid)
    assert agent("status").returncode != 0
    assert agent("stop").returncode == 0
    assert agent("start").returncode == 0 and get(co.port)[0] == 200
    assert agent("stop").returncode == 0
    assert agent("status").returncode == 7


def test_launcher_without_a_checkout(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    run = [str(LAUNCHER)]
    assert subprocess.run([*run, "stop"], env=env, capture_output=True).returncode == 0
    assert subprocess.run([*run, "status"], env=env, capture_output=True).returncode == 4
    r = subprocess.run([*run, "start"], env={**env, "OCF_ROOT": str(tmp_path)},
                       capture_output=True, text=True)
    assert r.returncode == 5 and "not an rgmanager-py checkout" in r.stderr


def test_setup_installs_the_launcher_not_a_symlink() -> None:
    text = (REPO / "setup.sh").read_text()
    assert "ln -s" not in text
    assert "etc/demo/demo-httpd-launcher" in text


def test_demo_config_checks_status_every_5_seconds() -> None:
    """status_poll_interval=5 is only useful if the script's own status interval is 5 s
    too (the script agent's default is 30 s)."""
    from rgmanager.agents.discovery import load_rules
    from rgmanager.loader import load

    loaded = load(REPO / "etc" / "cluster.conf", load_rules(cache_path=False))
    assert loaded.config.rm.status_poll_interval == 5
    (node,) = loaded.forest.find("script", "httpd")
    assert [(a.interval, a.depth) for a in node.status_actions()] == [(5, 0)]
