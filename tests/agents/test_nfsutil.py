"""nfsutil's status-path helpers: is_running (rpc.mountd) and the export table."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rgmanager.agentlib import nfsutil, syscmd

from ._nfs_helpers import unexport_under


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


def _world(client: str) -> str:
    return "*" if client == "<world>" else client


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("exportfs") is None,
                    reason="needs root and exportfs (nfs-kernel-server)")
def test_export_table_read_directly_matches_exportfs(tmp_path: Path) -> None:
    """The status path reads the export table itself; it must see what ``exportfs -v``
    sees: hosts, networks, the world, paths with spaces and paths long enough to wrap."""
    if nfsutil.etab_path() is None:
        pytest.skip(f"{nfsutil.ETAB} is not the export table here")
    plain = tmp_path / "plain"
    spaced = tmp_path / "a rather long directory name with spaces that makes exportfs wrap"
    for d in (plain, spaced):
        d.mkdir()
    specs = [("127.0.0.1", plain), ("*", spaced), ("127.0.0.0/8", spaced)]
    try:
        for client, path in specs:
            subprocess.run(["exportfs", "-i", "-o", "ro", f"{client}:{path}"], check=True,
                           capture_output=True)

        def ours(exports: list[nfsutil.Export]) -> set[tuple[str, str]]:
            return {(e.path, _world(e.client)) for e in exports
                    if e.path.startswith(str(tmp_path))}

        direct = ours(nfsutil.list_exports())
        shown = ours(nfsutil.parse_exportfs(syscmd.run(["exportfs", "-v"], check=True).stdout))
        assert direct == shown == {(str(p), c) for c, p in specs}
        for client, path in specs:
            assert nfsutil.find_export(client, str(path)) is not None
        subprocess.run(["exportfs", "-u", f"*:{spaced}"], check=True, capture_output=True)
        assert nfsutil.find_export("*", str(spaced)) is None  # noticed at once
        assert nfsutil.find_export("127.0.0.0/8", str(spaced)) is not None
    finally:
        unexport_under(tmp_path)


def test_moved_export_table_falls_back_to_exportfs(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "nfs.conf"
    conf.write_text("[exportfs]\n# state-directory-path=/var/lib/nfs\n")
    etab = tmp_path / "etab"
    etab.write_text("")
    monkeypatch.setattr(nfsutil, "ETAB", str(etab))
    monkeypatch.setattr(nfsutil, "NFS_CONF_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(nfsutil, "NFS_CONF", str(tmp_path / "absent.conf"))
    assert nfsutil.etab_path() == str(etab)
    monkeypatch.setattr(nfsutil, "NFS_CONF", str(conf))
    assert nfsutil.etab_path() == str(etab)  # a commented default changes nothing
    conf.write_text("[exportfs]\n state-directory-path = /srv/nfs-state\n")
    assert nfsutil.etab_path() is None
    monkeypatch.setattr(nfsutil, "ETAB", str(tmp_path / "missing"))
    monkeypatch.setattr(nfsutil, "NFS_CONF", str(tmp_path / "absent.conf"))
    assert nfsutil.etab_path() is None
