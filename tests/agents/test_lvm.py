"""lvm (HA-LVM by tags) on a real volume group on a loop device.

Tags, ownership checks and failure paths only need LVM metadata, which works
without device-mapper.  Activation needs the kernel's device-mapper; where it
is missing (probed with ``dmsetup version``) the logical volumes are created
with vgcfgrestore instead of lvcreate, the activation tests skip with the
probed reason, and a test checks that a failed activation leaves no claim.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import RunAgent, needs_root, ocf_tester

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("vgcreate") is None, reason="lvm2 is not installed"),
]

ME = os.uname().nodename
OTHER = "othernode"
_counter = itertools.count()
NO_UDEV = "activation { udev_sync = 0 udev_rules = 0 }"


def lvm(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)


def ok(*argv: str) -> str:
    p = lvm(*argv)
    assert p.returncode == 0, f"{argv}: {p.stderr}"
    return p.stdout


def dm_reason() -> str | None:
    """None when device-mapper works here, else the error dmsetup gave."""
    if shutil.which("dmsetup") is None:
        return "dmsetup is not installed"
    p = lvm("dmsetup", "version")
    if p.returncode != 0:
        lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        return "device-mapper unavailable: dmsetup version: " + "; ".join(lines[:2])
    return None


DM_REASON = dm_reason()
needs_dm = pytest.mark.skipif(DM_REASON is not None, reason=DM_REASON or "")


@dataclass
class VG:
    name: str
    loop: str
    lvs: tuple[str, ...] = ("lv1", "lv2")

    def tags(self) -> list[str]:
        return [t for t in ok("vgs", "--noheadings", "-o", "vg_tags", self.name)
                .strip().split(",") if t]

    def lv_tags(self, lv: str) -> list[str]:
        return [t for t in ok("lvs", "--noheadings", "-o", "lv_tags", f"{self.name}/{lv}")
                .strip().split(",") if t]

    def active(self, lv: str) -> bool:
        attr = ok("lvs", "--noheadings", "-o", "lv_attr", f"{self.name}/{lv}").strip()
        return len(attr) > 4 and attr[4] == "a"


def _restore_lvs_without_dm(vg: str, loop: str, tmp_path: Path, lvs: tuple[str, ...]) -> None:
    """Add inactive LVs to the VG metadata (lvcreate insists on device-mapper)."""
    backup = tmp_path / "vg.backup"
    ok("vgcfgbackup", "--devices", loop, "-f", str(backup), vg)
    text = backup.read_text()
    blocks = []
    for i, lv in enumerate(lvs):
        lv_id = f"rgtest-{i:04d}-aaaa-bbbb-cccc-dddd-{i:06d}"
        blocks.append(
            f'\t\t{lv} {{\n\t\t\tid = "{lv_id}"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n'
            f'\t\t\tflags = []\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {{\n'
            f'\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 2\n\t\t\t\ttype = "striped"\n'
            f'\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = [ "pv0", {2 * i} ]\n\t\t\t}}\n\t\t}}\n')
    section = "\tlogical_volumes {\n" + "".join(blocks) + "\t}\n"
    end = text.rindex("}")
    text = text[:end] + section + text[end:]
    text = text.replace("seqno = 1", "seqno = 2", 1)
    backup.write_text(text)
    ok("vgcfgrestore", "--devices", loop, "-f", str(backup), vg)


@pytest.fixture
def vg(tmp_path: Path) -> Iterator[VG]:
    """A fresh VG (64M loop device) with two inactive 8M LVs; removed afterwards."""
    img = tmp_path / "pv.img"
    with open(img, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    p = lvm("losetup", "--find", "--show", str(img))
    if p.returncode != 0:
        pytest.skip(f"no loop device: {p.stderr.strip()}")
    loop = p.stdout.strip()
    name = f"rgtest_{os.getpid()}_{next(_counter)}"
    vol = VG(name, loop)
    try:
        p = lvm("pvcreate", "-q", "--devices", loop, loop)
        if p.returncode != 0:
            pytest.skip(f"pvcreate on {loop} failed: {' '.join(p.stderr.split())}")
        ok("vgcreate", "-q", "--devices", loop, name, loop)
        if DM_REASON is None:
            for lv in vol.lvs:
                ok("lvcreate", "-q", "--devices", loop, "--config", NO_UDEV, "-an", "-Zn",
                   "-L", "8M", "-n", lv, name)
        else:
            _restore_lvs_without_dm(name, loop, tmp_path, vol.lvs)
        yield vol
    finally:
        lvm("vgchange", "--devices", loop, "--config", NO_UDEV, "-an", name)
        lvm("vgremove", "-f", "--devices", loop, "--config", NO_UDEV, name)
        lvm("pvremove", "-q", "--devices", loop, loop)
        lvm("losetup", "-d", loop)


# --- no device-mapper needed ----------------------------------------------------------

def test_lvm_missing_vg(run_agent: RunAgent) -> None:
    p = dict(name="l", vg_name=f"rgtest_missing_{os.getpid()}")
    assert run_agent("lvm", "status", **p).rc == 7
    r = run_agent("lvm", "start", **p)
    assert r.rc == 1 and "not found" in r.stderr
    assert run_agent("lvm", "stop", **p).rc == 0
    assert run_agent("lvm", "validate-all", **p).rc == 0
    assert run_agent("lvm", "validate-all", name="l", vg_name="a/b").rc == 6
    assert run_agent("lvm", "validate-all", name="l", vg_name="v", self_fence="maybe").rc == 6
    assert run_agent("lvm", "validate-all", name="l").rc == 6


def test_lvm_foreign_tag_refuses_start(run_agent: RunAgent, vg: VG) -> None:
    ok("vgchange", "--addtag", OTHER, vg.name)
    p = dict(name="l", vg_name=vg.name)
    r = run_agent("lvm", "start", **p)
    assert r.rc == 1 and f"owned by {OTHER}" in r.stderr
    assert vg.tags() == [OTHER]
    assert not vg.active("lv1")
    assert run_agent("lvm", "status", **p).rc == 7
    assert run_agent("lvm", "stop", **p).rc == 0  # nothing of ours to stop
    assert vg.tags() == [OTHER]  # someone else's tag is never removed


def test_lvm_foreign_lv_tag_refuses_start(run_agent: RunAgent, vg: VG) -> None:
    ok("lvchange", "--addtag", OTHER, f"{vg.name}/lv1")
    p = dict(name="l", vg_name=vg.name, lv_name="lv1")
    r = run_agent("lvm", "start", **p)
    assert r.rc == 1 and f"owned by {OTHER}" in r.stderr
    assert vg.lv_tags("lv1") == [OTHER]
    assert run_agent("lvm", "status", **p).rc == 7
    r = run_agent("lvm", "start", name="l", vg_name=vg.name, lv_name="nosuchlv")
    assert r.rc == 1 and "not found" in r.stderr


def test_lvm_failed_activation_leaves_no_claim(run_agent: RunAgent, vg: VG) -> None:
    if DM_REASON is None:
        pytest.skip("device-mapper works here, so activation does not fail")
    p = dict(name="l", vg_name=vg.name)
    r = run_agent("lvm", "start", **p)
    assert r.rc == 1 and "cannot activate" in r.stderr
    assert ME not in vg.tags()
    assert run_agent("lvm", "status", **p).rc == 7
    assert run_agent("lvm", "stop", **p).rc == 0


# --- with device-mapper ---------------------------------------------------------------

@needs_dm
def test_lvm_vg_lifecycle(run_agent: RunAgent, vg: VG) -> None:
    p = dict(name="l", vg_name=vg.name)
    assert run_agent("lvm", "status", **p).rc == 7
    assert run_agent("lvm", "start", **p).rc == 0
    assert ME in vg.tags()
    assert vg.active("lv1") and vg.active("lv2")
    assert run_agent("lvm", "start", **p).rc == 0
    assert run_agent("lvm", "status", **p).rc == 0
    assert run_agent("lvm", "status", check_level=10, **p).rc == 0
    assert run_agent("lvm", "stop", **p).rc == 0
    assert not vg.active("lv1") and not vg.active("lv2")
    assert ME not in vg.tags()
    assert run_agent("lvm", "stop", **p).rc == 0
    assert run_agent("lvm", "status", **p).rc == 7


@needs_dm
def test_lvm_lv_lifecycle(run_agent: RunAgent, vg: VG) -> None:
    p = dict(name="l", vg_name=vg.name, lv_name="lv1")
    assert run_agent("lvm", "start", **p).rc == 0
    assert ME in vg.lv_tags("lv1") and ME not in vg.tags()
    assert vg.active("lv1") and not vg.active("lv2")
    assert run_agent("lvm", "start", **p).rc == 0
    assert run_agent("lvm", "status", check_level=10, **p).rc == 0
    assert run_agent("lvm", "stop", **p).rc == 0
    assert not vg.active("lv1") and ME not in vg.lv_tags("lv1")
    assert run_agent("lvm", "stop", **p).rc == 0
    assert run_agent("lvm", "status", **p).rc == 7


@needs_dm
def test_lvm_deactivated_behind_its_back(run_agent: RunAgent, vg: VG) -> None:
    p = dict(name="l", vg_name=vg.name)
    assert run_agent("lvm", "start", **p).rc == 0
    ok("lvchange", "--config", NO_UDEV, "-an", f"{vg.name}/lv2")
    assert run_agent("lvm", "status", **p).rc == 7
    assert run_agent("lvm", "recover", **p).rc == 0
    assert run_agent("lvm", "status", **p).rc == 0
    # Tag taken away: no longer ours, even though the LVs are active.
    ok("vgchange", "--deltag", ME, vg.name)
    assert run_agent("lvm", "status", **p).rc == 7
    assert run_agent("lvm", "stop", **p).rc == 0


@needs_dm
def test_lvm_busy_lv_stop_fails_without_reboot(run_agent: RunAgent, vg: VG) -> None:
    p = dict(name="l", vg_name=vg.name, lv_name="lv1", self_fence="1")
    assert run_agent("lvm", "start", **p).rc == 0
    dm_path = ok("lvs", "--noheadings", "-o", "lv_dm_path", f"{vg.name}/lv1").strip()
    fd = os.open(dm_path, os.O_RDONLY)  # holds the LV open: "in use"
    try:
        r = run_agent("lvm", "stop", **p)
        assert r.rc == 1
        assert "not rebooting" in r.stderr
        assert vg.active("lv1") and ME in vg.lv_tags("lv1")
    finally:
        os.close(fd)
    assert run_agent("lvm", "stop", **p).rc == 0


@needs_dm
def test_lvm_ocf_tester(rsctmp: Path, vg: VG) -> None:
    r = ocf_tester("lvm", {"name": "t", "vg_name": vg.name}, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
