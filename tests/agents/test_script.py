"""The script agent driving a real LSB init script that runs a ``sleep`` daemon."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunAgent, ocf_tester

# An idempotent LSB script: the agent relies on the script for idempotence.
LSB_SCRIPT = """#!/bin/sh
PIDFILE="$(dirname "$0")/daemon.pid"
# Running = the pid is alive and not a zombie (a killed daemon stays a zombie
# until init reaps it, which some container inits do lazily).
running() {
    [ -f "$PIDFILE" ] || return 1
    state=$(sed 's/.*) //' "/proc/$(cat "$PIDFILE")/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}
case "$1" in
start)
    running && exit 0
    setsid sleep 300 </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    echo "started daemon"
    exit 0 ;;
stop)
    if running; then
        kill "$(cat "$PIDFILE")"
        while running; do sleep 0.05; done
    fi
    rm -f "$PIDFILE"
    exit 0 ;;
status)
    running && exit 0
    exit 3 ;;
*) exit 2 ;;
esac
"""

# Status answers whatever code is in the file next to it; start fails if asked to.
CODE_SCRIPT = """#!/bin/sh
case "$1" in
status) exit "$(cat "$(dirname "$0")/code")" ;;
start) exit "$(cat "$(dirname "$0")/start_code" 2>/dev/null || echo 0)" ;;
*) exit 0 ;;
esac
"""


def daemon_pid(d: Path) -> int | None:
    try:
        return int((d / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def lsb(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "init"
    d.mkdir()
    script = d / "sleeper"
    script.write_text(LSB_SCRIPT)
    script.chmod(0o755)
    try:
        yield script
    finally:
        pid = daemon_pid(d)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_script_lifecycle(lsb: Path, run_agent: RunAgent) -> None:
    p = {"name": "sleeper", "file": str(lsb)}
    assert run_agent("script", "status", **p).rc == 7
    r = run_agent("script", "start", **p)
    assert r.rc == 0, r.stderr
    assert "started daemon" in r.stderr  # the script's output is logged
    pid = daemon_pid(lsb.parent)
    assert pid is not None and alive(pid)
    assert run_agent("script", "start", **p).rc == 0
    assert daemon_pid(lsb.parent) == pid  # idempotent: no second daemon
    assert run_agent("script", "status", **p).rc == 0
    assert run_agent("script", "monitor", **p).rc == 0
    assert run_agent("script", "stop", **p).rc == 0
    assert not alive(pid)
    assert run_agent("script", "stop", **p).rc == 0
    assert run_agent("script", "status", **p).rc == 7


def test_script_daemon_killed_behind_its_back(lsb: Path, run_agent: RunAgent) -> None:
    p = {"name": "sleeper", "file": str(lsb)}
    assert run_agent("script", "start", **p).rc == 0
    pid = daemon_pid(lsb.parent)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_agent("script", "status", **p).rc == 7
    assert run_agent("script", "stop", **p).rc == 0


@pytest.mark.parametrize(("lsb_rc", "ocf_rc"), [(0, 0), (3, 7), (1, 1), (2, 1), (4, 1),
                                                 (150, 1)])
def test_script_status_mapping(tmp_path: Path, run_agent: RunAgent, lsb_rc: int,
                               ocf_rc: int) -> None:
    script = tmp_path / "coded"
    script.write_text(CODE_SCRIPT)
    script.chmod(0o755)
    (tmp_path / "code").write_text(str(lsb_rc))
    assert run_agent("script", "status", name="c", file=str(script)).rc == ocf_rc


def test_script_start_failure(tmp_path: Path, run_agent: RunAgent) -> None:
    script = tmp_path / "coded"
    script.write_text(CODE_SCRIPT)
    script.chmod(0o755)
    (tmp_path / "start_code").write_text("7")
    r = run_agent("script", "start", name="c", file=str(script))
    assert r.rc == 1 and "returned 7" in r.stderr


def test_script_missing_or_not_executable(tmp_path: Path, run_agent: RunAgent) -> None:
    missing = str(tmp_path / "nope")
    assert run_agent("script", "start", name="x", file=missing).rc == 5
    assert run_agent("script", "status", name="x", file=missing).rc == 5
    assert run_agent("script", "validate-all", name="x", file=missing).rc == 5
    assert run_agent("script", "stop", name="x", file=missing).rc == 0  # nothing can run
    plain = tmp_path / "plain"
    plain.write_text(LSB_SCRIPT)
    plain.chmod(0o644)
    assert run_agent("script", "start", name="x", file=str(plain)).rc == 5
    assert run_agent("script", "stop", name="x", file=str(plain)).rc == 0
    assert run_agent("script", "start", name="x").rc == 6  # file not set


def test_script_ocf_tester(lsb: Path, rsctmp: Path) -> None:
    r = ocf_tester("script", {"name": "sleeper", "file": str(lsb)}, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
    assert daemon_pid(lsb.parent) is None  # ocf-tester ends with the resource stopped
