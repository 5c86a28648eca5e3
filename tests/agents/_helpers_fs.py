"""Loop images, mounts and busy processes for the fs/clusterfs agent tests.

Everything here undoes itself: :class:`FsLab` records what it created and
``cleanup()`` kills sleepers, unmounts and detaches loops even when a test
failed halfway.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import AGENT_DIR


def mounted_on(mountpoint: Path) -> list[str]:
    """Sources mounted at ``mountpoint`` according to /proc/self/mounts."""
    target = os.path.realpath(mountpoint)
    out = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            src, mp = line.split()[:2]
            if mp.replace("\\040", " ") == target:
                out.append(src)
    return out


def loops_for(image: Path) -> list[str]:
    """/dev/loopN devices backed by ``image``."""
    p = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                       check=False)
    return [line.split(":", 1)[0] for line in p.stdout.splitlines() if line.strip()]


@dataclass
class FsLab:
    """Images, loop devices, mountpoints and sleepers made by one test."""

    root: Path
    images: list[Path] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    mountpoints: list[Path] = field(default_factory=list)
    sleepers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def image(self, fstype: str = "ext4", size: str = "32M", label: str | None = None) -> Path:
        img = self.root / f"img{len(self.images)}.{fstype}"
        subprocess.run(["truncate", "-s", size, str(img)], check=True)
        self.images.append(img)
        if fstype == "xfs":
            argv = ["mkfs.xfs", "-q", "-f"] + (["-L", label] if label else [])
        else:
            argv = ["mkfs.ext4", "-q", "-F"] + (["-L", label] if label else [])
        subprocess.run([*argv, str(img)], check=True, capture_output=True)
        return img

    def attach(self, image: Path) -> str:
        dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                             capture_output=True, text=True).stdout.strip()
        self.loops.append(dev)
        return dev

    def mountpoint(self, name: str = "mnt") -> Path:
        mp = self.root / name
        self.mountpoints.append(mp)
        return mp

    def sleeper(self, cwd: Path) -> subprocess.Popen[bytes]:
        """A process keeping ``cwd`` busy (its working directory is inside it)."""
        proc = subprocess.Popen(["sleep", "300"], cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sleepers.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.sleepers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for mp in self.mountpoints:
            for _ in range(5):
                if not mounted_on(mp):
                    break
                subprocess.run(["umount", str(mp)], check=False, capture_output=True)
            if mounted_on(mp):
                subprocess.run(["umount", "-l", str(mp)], check=False, capture_output=True)
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)
        for img in self.images:  # loops made by `mount -o loop` (autoclear, but be sure)
            for dev in loops_for(img):
                subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


def unique_label() -> str:
    return "rgt" + uuid.uuid4().hex[:8]


def wait_dead(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            return rc
        time.sleep(0.05)
    return None


def metadata(agent: str) -> ET.Element:
    out = subprocess.run([str(AGENT_DIR / agent), "meta-data"], capture_output=True,
                         text=True, check=True).stdout
    # ElementTree does not read the internal DTD subset; drop it.
    body = out[out.index("<resource-agent"):]
    return ET.fromstring(body)
