"""etc/systemd/rgmanager.service: valid for systemd, true to docs/install.md and the daemon.

``systemd-analyze verify`` needs the unit's ExecStart to exist, so the unit
is rendered into tmp_path with this checkout's own ``.venv/bin/rgmanager`` in
place of ``/opt/rgmanager-py/.venv/bin/rgmanager``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rgmanager.cli.daemon_main import EXIT_ALREADY_RUNNING, EXIT_STARTUP

from .test_daemon import Daemon

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "etc" / "systemd" / "rgmanager.service"
INSTALL = REPO / "docs" / "install.md"
PREFIX = "/opt/rgmanager-py"


def settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (keys may repeat), comments left out."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_runs_what_install_md_installs() -> None:
    s = settings()
    exec_start = s["ExecStart"][0].split()
    assert exec_start[0] == f"{PREFIX}/.venv/bin/rgmanager"
    assert exec_start[1:] == ["-c", "${RGMANAGER_CONF}"]
    assert s["Documentation"] == [f"file://{PREFIX}/docs/install.md"]
    doc = INSTALL.read_text()
    for step in (f"git clone <this repository> {PREFIX}", "./setup.sh",
                 "install -m 0644 etc/systemd/rgmanager.service "
                 "/etc/systemd/system/rgmanager.service",
                 "systemctl enable --now rgmanager", s["ExecStart"][0]):
        assert step in doc, step
    # setup.sh is what makes .venv/bin/rgmanager (an editable install of the checkout)
    assert "python3 -m venv .venv" in (REPO / "setup.sh").read_text()


def test_unit_exit_codes_and_type_match_the_daemon() -> None:
    s = settings()
    assert set(s["RestartPreventExitStatus"][0].split()) == {str(EXIT_STARTUP),
                                                            str(EXIT_ALREADY_RUNNING)}
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"] and s["KillMode"] == ["mixed"]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    rgmanager = Path(sys.executable).parent / "rgmanager"
    if not rgmanager.exists():
        pytest.skip(f"{rgmanager} missing: run setup.sh to install the console scripts")
    text = UNIT.read_text()
    assert f"{PREFIX}/.venv/bin/rgmanager" in text
    unit = tmp_path / "rgmanager.service"
    unit.write_text(text.replace(f"{PREFIX}/.venv/bin/rgmanager", str(rgmanager)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                       timeout=120)
    complaints = [line for line in (r.stdout + r.stderr).splitlines()
                  if "rgmanager.service" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr

    # and verify does catch a broken unit here (the check is not vacuous)
    bad = tmp_path / "bad" / "rgmanager.service"
    bad.parent.mkdir()
    bad.write_text(text.replace(f"{PREFIX}/.venv/bin/rgmanager", str(tmp_path / "nosuch")))
    r = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0


def test_daemon_notifies_systemd_ready_and_stopping(tmp_path: Path) -> None:
    """Type=notify is honest: READY=1 once the control socket answers, STOPPING=1 on SIGTERM."""
    d = Daemon(tmp_path)
    addr = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(addr)
        sock.settimeout(60)
        d.env["NOTIFY_SOCKET"] = addr
        d.write('<service name="web"/>')
        d.start()
        try:
            assert sock.recv(4096) == b"READY=1"
            assert d.cli("clustat").returncode == 0
            assert d.proc is not None
            d.proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert d.proc.wait(60) == 0
        finally:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            d.log.close()
