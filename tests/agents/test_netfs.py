"""netfs: real NFS mounts over loopback where the kernel allows, plus stop-path tests.

The lifecycle tests need a kernel NFS server and client; they skip with the
probed reason otherwise.  The unmount machinery (busy mount point, fuser,
no_unmount) does not depend on NFS: netfs judges "mounted" by source and
mount point in /proc/mounts, so a tmpfs mounted with the NFS-style source
``127.0.0.1:/rgtest-export`` stands in for an NFS mount in those tests.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._nfs_helpers import (  # noqa: F401  (nfs_server_fixture provides nfs_server)
    NfsServer,
    export,
    force_umount,
    is_mounted,
    nfs_mount_options,
    nfs_server_fixture,
    sh,
    unexport_under,
)
from .conftest import RunAgent, needs_root, ocf_tester

pytestmark = needs_root

FAKE_EXPORT = "/rgtest-export"


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    """A mount point that is unmounted (lazily if need be) after the test."""
    d = tmp_path / "mnt"
    d.mkdir()
    try:
        yield d
    finally:
        force_umount(d)


def standin(mnt: Path) -> dict[str, str]:
    """Mount a tmpfs whose source reads like an NFS export; netfs params that match it."""
    sh("mount", "-t", "tmpfs", "-o", "size=1m", f"127.0.0.1:{FAKE_EXPORT}",
       str(mnt)).check_returncode()
    return dict(name="nfs1", mountpoint=str(mnt), host="127.0.0.1", export=FAKE_EXPORT)


def busy_process(mnt: Path) -> subprocess.Popen[bytes]:
    """A process whose working directory is inside the mount (keeps it busy)."""
    proc = subprocess.Popen(["sleep", "60"], cwd=str(mnt))
    time.sleep(0.2)
    return proc


# --- without a kernel NFS client -------------------------------------------------

def test_netfs_status_and_stop_when_not_mounted(run_agent: RunAgent, mnt: Path) -> None:
    p = dict(name="nfs1", mountpoint=str(mnt), host="127.0.0.1", export=FAKE_EXPORT)
    assert run_agent("netfs", "status", **p).rc == 7
    assert run_agent("netfs", "status", check_level=10, **p).rc == 7
    assert run_agent("netfs", "stop", **p).rc == 0


def test_netfs_standin_status_stop_idempotent(run_agent: RunAgent, mnt: Path) -> None:
    p = standin(mnt)
    assert run_agent("netfs", "status", **p).rc == 0
    assert run_agent("netfs", "status", check_level=10, **p).rc == 0
    assert run_agent("netfs", "start", **p).rc == 0  # already mounted: no second mount
    assert sum(line.split()[1] == str(mnt)
               for line in Path("/proc/mounts").read_text().splitlines()) == 1
    # Same host, other export: not ours.
    assert run_agent("netfs", "status", **{**p, "export": "/other"}).rc == 7
    assert run_agent("netfs", "stop", **p).rc == 0
    assert not is_mounted(mnt)
    assert run_agent("netfs", "stop", **p).rc == 0
    assert run_agent("netfs", "status", **p).rc == 7


def test_netfs_busy_mount_needs_force_unmount(run_agent: RunAgent, mnt: Path) -> None:
    p = standin(mnt)
    proc = busy_process(mnt)
    try:
        r = run_agent("netfs", "stop", **p)
        assert r.rc == 1 and "force_unmount is off" in r.stderr
        assert is_mounted(mnt) and proc.poll() is None
        assert run_agent("netfs", "stop", force_unmount="1", **p).rc == 0
        assert not is_mounted(mnt)
        assert proc.wait(timeout=10) == -9  # killed by fuser -km
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_netfs_no_unmount_leaves_it_mounted(run_agent: RunAgent, mnt: Path) -> None:
    p = standin(mnt)
    assert run_agent("netfs", "stop", no_unmount="1", **p).rc == 0
    assert is_mounted(mnt)


def test_netfs_start_failures(run_agent: RunAgent, tmp_path: Path, mnt: Path) -> None:
    base = dict(name="nfs1", mountpoint=str(mnt), host="127.0.0.1",
                export=f"/rgtest-nonexistent-{os.getpid()}")
    # Something else is mounted on the mount point.
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "other", str(mnt)).check_returncode()
    r = run_agent("netfs", "start", **base)
    assert r.rc == 1 and "already has other" in r.stderr
    force_umount(mnt)
    # A mount that cannot succeed (no such export / no NFS in this kernel).
    r = run_agent("netfs", "start", fstype="nfs4", options="retry=0,timeo=10,retrans=1",
                  timeout=180, **base)
    assert r.rc == 1, r.stderr
    assert not is_mounted(mnt)
    assert run_agent("netfs", "status", **base).rc == 7
    # Configuration errors.
    assert run_agent("netfs", "validate-all", fstype="ext4", **base).rc == 6
    assert run_agent("netfs", "validate-all", **{**base, "mountpoint": "rel/dir"}).rc == 6
    assert run_agent("netfs", "validate-all", name="x", mountpoint=str(mnt)).rc == 6


# --- real NFS over loopback --------------------------------------------------------

@pytest.fixture
def nfs_export(nfs_server: NfsServer, tmp_path: Path, mnt: Path) -> Iterator[dict[str, str]]:
    """Export tmp_path/srv to 127.0.0.1 and find mount options this kernel accepts."""
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "hello").write_text("from the server\n")
    export(srv, fsid=4000 + os.getpid() % 1000)
    try:
        found = nfs_mount_options(srv, mnt)
        if isinstance(found, str):
            pytest.skip(found)
        fstype, options = found
        yield dict(name="nfs1", mountpoint=str(mnt), host="127.0.0.1", export=str(srv),
                   fstype=fstype, options=options)
    finally:
        force_umount(mnt)
        unexport_under(tmp_path)


def test_netfs_nfs_lifecycle(run_agent: RunAgent, nfs_export: dict[str, str],
                             mnt: Path) -> None:
    p = nfs_export
    assert run_agent("netfs", "status", **p).rc == 7
    assert run_agent("netfs", "start", **p).rc == 0
    assert run_agent("netfs", "start", **p).rc == 0
    assert run_agent("netfs", "status", **p).rc == 0
    assert run_agent("netfs", "status", check_level=10, **p).rc == 0
    assert (mnt / "hello").read_text() == "from the server\n"
    (mnt / "written").write_text("through NFS\n")
    assert (Path(p["export"]) / "written").read_text() == "through NFS\n"
    assert run_agent("netfs", "stop", **p).rc == 0
    assert not is_mounted(mnt)
    assert run_agent("netfs", "stop", **p).rc == 0
    assert run_agent("netfs", "status", **p).rc == 7


def test_netfs_nfs_busy_force_unmount(run_agent: RunAgent, nfs_export: dict[str, str],
                                      mnt: Path) -> None:
    p = nfs_export
    assert run_agent("netfs", "start", **p).rc == 0
    proc = busy_process(mnt)
    try:
        assert run_agent("netfs", "stop", **p).rc == 1
        assert run_agent("netfs", "stop", force_unmount="1", **p).rc == 0
        assert not is_mounted(mnt)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_netfs_ocf_tester(rsctmp: Path, nfs_export: dict[str, str]) -> None:
    r = ocf_tester("netfs", nfs_export, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
