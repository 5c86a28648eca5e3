"""The clusterfs agent: same code as fs (no gfs2 here, so an ext4 loop device stands in)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._helpers_fs import FsLab, metadata, mounted_on, wait_dead
from .conftest import RunAgent, needs_root, ocf_tester

pytestmark = needs_root


def cfs_params(device: str | Path, mp: Path, **extra: str) -> dict[str, str]:
    return {"name": "shared", "mountpoint": str(mp), "device": str(device), **extra}


def test_clusterfs_lifecycle(lab: FsLab, run_agent: RunAgent) -> None:
    dev = lab.attach(lab.image())
    mp = lab.mountpoint()
    p = cfs_params(dev, mp, fstype="ext4")
    assert run_agent("clusterfs", "status", **p).rc == 7
    assert run_agent("clusterfs", "start", **p).rc == 0
    assert run_agent("clusterfs", "start", **p).rc == 0
    assert mounted_on(mp) == [dev]
    for level in (0, 10, 20):
        assert run_agent("clusterfs", "status", check_level=level, **p).rc == 0
    assert run_agent("clusterfs", "stop", **p).rc == 0
    assert run_agent("clusterfs", "stop", **p).rc == 0
    assert run_agent("clusterfs", "status", **p).rc == 7
    assert mounted_on(mp) == []


def test_clusterfs_busy_and_forced(lab: FsLab, run_agent: RunAgent) -> None:
    dev = lab.attach(lab.image())
    mp = lab.mountpoint()
    p = cfs_params(dev, mp)
    assert run_agent("clusterfs", "start", **p).rc == 0
    sleeper = lab.sleeper(mp)
    assert run_agent("clusterfs", "stop", **p).rc == 1  # force_unmount defaults to off
    assert mounted_on(mp) == [dev]
    assert run_agent("clusterfs", "stop", **p, force_unmount="yes").rc == 0
    assert wait_dead(sleeper) == -9
    assert run_agent("clusterfs", "status", **p).rc == 7


def test_clusterfs_write_check_and_quick_status(lab: FsLab, run_agent: RunAgent) -> None:
    """An immutable root dir defeats even root's write test (depth 20); quick_status skips it."""
    dev = lab.attach(lab.image())
    mp = lab.mountpoint()
    p = cfs_params(dev, mp)
    assert run_agent("clusterfs", "start", **p).rc == 0
    subprocess.run(["chattr", "+i", str(mp)], check=True)
    try:
        assert run_agent("clusterfs", "status", check_level=10, **p).rc == 0
        r = run_agent("clusterfs", "status", check_level=20, **p)
        assert r.rc == 1 and "not writable" in r.stderr
        assert run_agent("clusterfs", "status", check_level=20, quick_status="1", **p).rc == 0
    finally:
        subprocess.run(["chattr", "-i", str(mp)], check=True)
    assert run_agent("clusterfs", "status", check_level=20, **p).rc == 0
    assert run_agent("clusterfs", "stop", **p).rc == 0


def test_clusterfs_metadata() -> None:
    root = metadata("clusterfs")
    params = {p.get("name") for p in root.iter("parameter")}
    assert "force_fsck" not in params
    assert {"name", "mountpoint", "device", "fstype", "force_unmount", "self_fence"} <= params
    special = root.find("special")
    assert special is not None and special.find("attributes") is None  # no maxinstances
    types = {c.get("type") for c in special.iter("child")}
    assert types == {"fs", "clusterfs", "nfsexport"}


def test_clusterfs_ocf_tester(lab: FsLab, rsctmp: Path) -> None:
    dev = lab.attach(lab.image())
    mp = lab.mountpoint()
    r = ocf_tester("clusterfs", cfs_params(dev, mp), rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
    assert mounted_on(mp) == []
