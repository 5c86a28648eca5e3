"""The fs agent on real loop-mounted ext4/xfs images: lifecycle, depths, busy stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rgmanager.agentlib import fs, mountfs, ocf

from ._helpers_fs import FsLab, loops_for, metadata, mounted_on, unique_label, wait_dead
from .conftest import RunAgent, needs_root, ocf_tester

pytestmark = needs_root


def fs_params(device: str | Path, mp: Path, **extra: str) -> dict[str, str]:
    return {"name": "data", "mountpoint": str(mp), "device": str(device), **extra}


def test_fs_lifecycle_on_loop_device(lab: FsLab, run_agent: RunAgent) -> None:
    dev = lab.attach(lab.image())
    mp = lab.mountpoint()
    p = fs_params(dev, mp)
    assert run_agent("fs", "status", **p).rc == 7
    assert run_agent("fs", "start", **p).rc == 0
    assert mp.is_dir()
    assert mounted_on(mp) == [dev]
    assert run_agent("fs", "start", **p).rc == 0  # idempotent
    assert mounted_on(mp) == [dev]
    for level in (0, 10, 20):
        r = run_agent("fs", "status", check_level=level, **p)
        assert r.rc == 0, r.stderr
    assert not [n for n in os.listdir(mp) if n.startswith(".writable_test")]
    assert run_agent("fs", "monitor", **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0
    assert mounted_on(mp) == []
    assert run_agent("fs", "stop", **p).rc == 0  # idempotent
    assert run_agent("fs", "status", **p).rc == 7
    assert loops_for(lab.images[0]) == [dev]  # a loop we attached is left alone


def test_fs_image_file_is_loop_mounted(lab: FsLab, run_agent: RunAgent) -> None:
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp)
    assert run_agent("fs", "start", **p).rc == 0
    loops = loops_for(img)
    assert len(loops) == 1 and mounted_on(mp) == loops
    assert run_agent("fs", "start", **p).rc == 0
    assert loops_for(img) == loops  # not mounted a second time
    assert run_agent("fs", "status", check_level=20, **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0
    assert mounted_on(mp) == [] and loops_for(img) == []  # autoclear detached it
    assert run_agent("fs", "status", **p).rc == 7


def test_fs_label_and_force_fsck(lab: FsLab, run_agent: RunAgent) -> None:
    label = unique_label()
    dev = lab.attach(lab.image(label=label))
    mp = lab.mountpoint()
    p = fs_params(f"LABEL={label}", mp, force_fsck="1")
    r = run_agent("fs", "start", **p)
    assert r.rc == 0, r.stderr
    assert mounted_on(mp) == [dev]
    assert run_agent("fs", "status", check_level=10, **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0
    assert run_agent("fs", "status", **p).rc == 7


def test_fs_label_status_in_one_process_runs_blkid_only_when_needed(
        lab: FsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an agent host a healthy LABEL= status is confirmed from the device blkid
    named before; anything else (here: unmounted behind its back) gets a fresh blkid."""
    label = unique_label()
    dev = lab.attach(lab.image(label=label))
    mp = lab.mountpoint()
    real = mountfs._resolve_tag
    deadline = time.monotonic() + 10  # a loop device just attached: until blkid sees it
    while real(f"LABEL={label}") != dev and time.monotonic() < deadline:
        time.sleep(0.05)
    calls: list[str] = []

    def counting(spec: str) -> str | None:
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(mountfs, "_resolve_tag", counting)
    monkeypatch.setattr(mountfs, "_tag_paths", {})
    env = {f"OCF_RESKEY_{k}": v for k, v in fs_params(f"LABEL={label}", mp).items()}

    def agent() -> mountfs.MountFs:
        return mountfs.MountFs(fs.KIND, ocf.Params(fs.SPEC, env))

    assert agent().start() == 0
    assert mounted_on(mp) == [dev]
    resolved = len(calls)
    for _ in range(5):
        assert agent().status() == 0
    assert len(calls) == resolved
    subprocess.run(["umount", str(mp)], check=True)
    with pytest.raises(ocf.AgentError) as err:
        agent().status()
    assert err.value.rc == ocf.OCF_NOT_RUNNING
    assert len(calls) == resolved + 1


def test_fs_xfs(lab: FsLab, run_agent: RunAgent) -> None:
    img = lab.image("xfs", "320M")
    mp = lab.mountpoint()
    p = fs_params(img, mp, fstype="xfs", options="noatime")
    r = run_agent("fs", "start", **p)
    assert r.rc == 0, r.stderr
    assert run_agent("fs", "status", check_level=20, **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0
    assert run_agent("fs", "status", **p).rc == 7


def test_fs_read_only_skips_write_test(lab: FsLab, run_agent: RunAgent) -> None:
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp, options="ro")
    assert run_agent("fs", "start", **p).rc == 0
    assert run_agent("fs", "status", check_level=20, **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0


def test_fs_busy_stop(lab: FsLab, run_agent: RunAgent) -> None:
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp)
    assert run_agent("fs", "start", **p).rc == 0
    sleeper = lab.sleeper(mp)
    r = run_agent("fs", "stop", **p, force_unmount="0")
    assert r.rc == 1
    assert "busy" in r.stderr
    assert sleeper.poll() is None and mounted_on(mp)
    assert run_agent("fs", "status", **p).rc == 0
    r = run_agent("fs", "stop", **p, force_unmount="1")
    assert r.rc == 0, r.stderr
    assert wait_dead(sleeper) == -9
    assert mounted_on(mp) == []
    assert run_agent("fs", "status", **p).rc == 7


def test_fs_self_fence_is_suppressed_in_tests(lab: FsLab, run_agent: RunAgent) -> None:
    """self_fence never reboots without RGMANAGER_ALLOW_SELF_FENCE=1 (run_agent never sets it)."""
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp, self_fence="1")
    assert run_agent("fs", "start", **p).rc == 0
    lab.sleeper(mp)
    r = run_agent("fs", "stop", **p)
    assert r.rc == 1
    assert "CRITICAL" in r.stderr and "reboot suppressed" in r.stderr
    assert mounted_on(mp)


def test_fs_unmounted_behind_its_back(lab: FsLab, run_agent: RunAgent) -> None:
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp)
    assert run_agent("fs", "start", **p).rc == 0
    subprocess.run(["umount", str(mp)], check=True)
    assert run_agent("fs", "status", **p).rc == 7
    assert run_agent("fs", "stop", **p).rc == 0
    assert run_agent("fs", "recover", **p).rc == 0
    assert run_agent("fs", "status", **p).rc == 0
    assert run_agent("fs", "stop", **p).rc == 0


def test_fs_other_fs_on_mountpoint(lab: FsLab, run_agent: RunAgent) -> None:
    mine, other = lab.image(), lab.image()
    mp = lab.mountpoint()
    assert run_agent("fs", "start", **fs_params(other, mp, name="other")).rc == 0
    p = fs_params(mine, mp)
    assert run_agent("fs", "status", **p).rc == 7
    r = run_agent("fs", "start", **p)
    assert r.rc == 1 and "already mounted" in r.stderr
    assert run_agent("fs", "stop", **p).rc == 0  # not ours: left alone
    assert len(mounted_on(mp)) == 1
    assert run_agent("fs", "stop", **fs_params(other, mp)).rc == 0


def test_fs_config_errors(tmp_path: Path, run_agent: RunAgent) -> None:
    mp = tmp_path / "mnt"
    assert run_agent("fs", "start", **fs_params(tmp_path / "nope.img", mp)).rc == 5
    assert run_agent("fs", "status", **fs_params(tmp_path / "nope.img", mp)).rc == 7
    assert run_agent("fs", "stop", **fs_params(tmp_path / "nope.img", mp)).rc == 0
    assert run_agent("fs", "validate-all", **fs_params("/dev/null", Path("rel"))).rc == 6
    assert run_agent("fs", "validate-all", name="x", mountpoint=str(mp)).rc == 6
    r = run_agent("fs", "validate-all", **fs_params("/dev/null", mp, force_unmount="maybe"))
    assert r.rc == 6


def test_fs_metadata() -> None:
    root = metadata("fs")
    params = {p.get("name"): p for p in root.iter("parameter")}
    assert params["name"].get("primary") == "1"
    assert params["mountpoint"].get("unique") == "1"
    assert params["device"].get("required") == "1"
    assert params["nfslock"].get("inherit") == "service%nfslock"
    fu = params["force_unmount"].find("content")
    assert fu is not None and fu.get("default") == "0"
    assert "force_fsck" in params
    special = root.find("special")
    assert special is not None
    attrs = special.find("attributes")
    assert attrs is not None and attrs.get("maxinstances") == "1"
    children = {c.get("type"): (c.get("start"), c.get("stop")) for c in special.iter("child")}
    assert children == {"fs": ("1", "3"), "clusterfs": ("1", "3"), "nfsexport": ("3", "1")}
    depths = {a.get("depth") for a in root.iter("action") if a.get("name") == "status"}
    assert depths == {"0", "10", "20"}


def test_fs_ocf_tester(lab: FsLab, rsctmp: Path) -> None:
    img = lab.image()
    mp = lab.mountpoint()
    r = ocf_tester("fs", fs_params(img, mp), rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
    assert mounted_on(mp) == []


@pytest.mark.parametrize("agent", ["fs", "clusterfs"])
def test_write_test_never_follows_a_planted_symlink(lab: FsLab, run_agent: RunAgent,
                                                    tmp_path: Path, agent: str) -> None:
    """Depth 20 on a mode-0777 file system: a symlink planted at the old fixed test-file
    name (``.writable_test.<host>``) must not be followed; its target stays intact."""
    img = lab.image()
    mp = lab.mountpoint()
    p = fs_params(img, mp)
    assert run_agent(agent, "start", **p).rc == 0
    os.chmod(mp, 0o777)  # anyone may create files in the mounted file system
    victim = tmp_path / "victim"
    victim.write_text("precious root data\n")
    victim.chmod(0o600)
    planted = mp / f".writable_test.{socket.gethostname()}"
    planted.symlink_to(victim)
    r = run_agent(agent, "status", check_level=20, **p)
    assert r.rc == 0, r.stderr
    assert victim.read_text() == "precious root data\n"
    assert planted.is_symlink()  # the planted link was neither written through nor removed
    leftovers = [n for n in os.listdir(mp) if n.startswith(".writable_test") and
                 not (mp / n).is_symlink()]
    assert leftovers == []  # our own unique test file was removed
    planted.unlink()
    assert run_agent(agent, "stop", **p).rc == 0
