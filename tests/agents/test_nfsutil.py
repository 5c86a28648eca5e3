"""nfsutil.is_running: the cheap "does rpc.mountd run" of the NFS agents' status."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rgmanager.agentlib import nfsutil


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_is_running_remembers_and_revalidates(tmp_path: Path) -> None:
    comm = f"rgmt{time.monotonic_ns() % 10**9}"  # unique /proc/PID/comm (15 chars max)
    prog = tmp_path / comm
    shutil.copy2("/bin/sleep", prog)
    assert not nfsutil.is_running(comm)
    first = subprocess.Popen([str(prog), "60"])
    try:
        assert _wait(lambda: nfsutil.is_running(comm))
        assert nfsutil._last_seen[comm] == first.pid
        second = subprocess.Popen([str(prog), "60"])
        try:
            first.kill()
            first.wait()
            # The remembered PID is gone: found again by a scan, not trusted.
            assert nfsutil.is_running(comm)
            assert nfsutil._last_seen[comm] == second.pid
        finally:
            second.kill()
            second.wait()
        assert not nfsutil.is_running(comm)
        assert comm not in nfsutil._last_seen
    finally:
        first.kill()
        first.wait()
