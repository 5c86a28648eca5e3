"""A real kernel NFS server on loopback for the NFS agent tests.

Everything is probed at test time; when this kernel cannot serve (or mount)
NFS the fixture skips with the exact error seen.  Only daemons and mounts this
module started are stopped again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgmanager.agentlib.nfsutil import parse_exportfs

NFSD_FS = "/proc/fs/nfsd"


def sh(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def pids_of(comm: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == comm[:15]:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.1)


def nfsd_fs_mounted() -> bool:
    return any(line.split()[1:3] == [NFSD_FS, "nfsd"]
               for line in Path("/proc/mounts").read_text().splitlines())


def nfsd_threads() -> int:
    try:
        return int(Path(NFSD_FS, "threads").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def kernel_nfsd_reason() -> str | None:
    """None when the kernel NFS server can run here, else why not (probed)."""
    if os.geteuid() != 0:
        return "the kernel NFS server needs root"
    for prog in ("rpc.nfsd", "rpc.mountd", "exportfs"):
        if shutil.which(prog) is None:
            return f"{prog} is not installed (nfs-kernel-server)"
    if nfsd_fs_mounted():
        return None
    if shutil.which("modprobe"):
        sh("modprobe", "nfsd")
    p = sh("mount", "-t", "nfsd", "nfsd", NFSD_FS)
    if p.returncode != 0:
        return (f"kernel NFS server unavailable: mount -t nfsd nfsd {NFSD_FS} failed: "
                f"{' '.join((p.stderr or p.stdout).split())}")
    sh("umount", NFSD_FS)
    return None


class NfsServer:
    """The loopback NFS server; remembers what it started so that it can undo it."""

    def __init__(self) -> None:
        self.mounted_fs = False
        self.rpcbind: list[int] = []
        self.mountd: list[int] = []
        self.statd: list[int] = []
        self.started_nfsd = False

    def ensure(self) -> None:
        """(Re)start whatever is missing, e.g. after an nfsserver test stopped nfsd."""
        if not nfsd_fs_mounted():
            p = sh("mount", "-t", "nfsd", "nfsd", NFSD_FS)
            if p.returncode != 0:
                pytest.skip(f"mount -t nfsd failed: {(p.stderr or p.stdout).strip()}")
            self.mounted_fs = True
        if shutil.which("rpcbind") and not pids_of("rpcbind"):
            before = set(pids_of("rpcbind"))
            sh("rpcbind", "-w")
            self.rpcbind += sorted(set(pids_of("rpcbind")) - before)
        if shutil.which("rpc.statd") and not pids_of("rpc.statd"):
            before = set(pids_of("rpc.statd"))
            sh("rpc.statd", "--no-notify")
            self.statd += sorted(set(pids_of("rpc.statd")) - before)
        if not pids_of("rpc.mountd"):
            before = set(pids_of("rpc.mountd"))
            p = sh("rpc.mountd")
            if p.returncode != 0:
                pytest.skip(f"rpc.mountd failed: {(p.stderr or p.stdout).strip()}")
            time.sleep(0.3)
            self.mountd += sorted(set(pids_of("rpc.mountd")) - before)
        if nfsd_threads() == 0:
            p = sh("rpc.nfsd", "8")
            if p.returncode != 0 or nfsd_threads() == 0:
                pytest.skip(f"rpc.nfsd 8 failed: {(p.stderr or p.stdout).strip()}")
            self.started_nfsd = True

    def teardown(self) -> None:
        if self.started_nfsd:
            sh("rpc.nfsd", "0")
        kill(self.mountd + self.statd + self.rpcbind)
        if self.mounted_fs and nfsd_threads() == 0:
            sh("umount", NFSD_FS)


@pytest.fixture(scope="module", name="nfs_server")
def nfs_server_fixture() -> Iterator[NfsServer]:
    """A running kernel NFS server (nfsd + mountd) on this host, or a skip with the reason."""
    reason = kernel_nfsd_reason()
    if reason:
        pytest.skip(reason)
    server = NfsServer()
    try:
        server.ensure()
        yield server
    finally:
        server.teardown()


def export(path: Path, fsid: int, client: str = "127.0.0.1") -> None:
    sh("exportfs", "-i", "-o", f"rw,no_root_squash,insecure,sync,fsid={fsid}",
       f"{client}:{path}").check_returncode()


def unexport_under(root: Path) -> None:
    """Remove every export of a path below ``root`` (test cleanup)."""
    p = sh("exportfs", "-v")
    for e in parse_exportfs(p.stdout):
        if e.path == str(root) or e.path.startswith(str(root) + "/"):
            client = "*" if e.client == "<world>" else e.client
            sh("exportfs", "-u", f"{client}:{e.path}")


def nfs_mount_options(server_dir: Path, mountpoint: Path) -> tuple[str, str] | str:
    """(fstype, options) of the first NFS flavour that mounts here, or why none does."""
    errors = []
    for fstype, opts in (("nfs", "vers=4.2,retry=0"), ("nfs4", "retry=0"),
                         ("nfs", "vers=3,nolock,retry=0")):
        p = sh("mount", "-t", fstype, "-o", opts, f"127.0.0.1:{server_dir}", str(mountpoint),
               timeout=60)
        if p.returncode == 0:
            sh("umount", str(mountpoint))
            return fstype, opts
        errors.append(f"{fstype} -o {opts}: {(p.stderr or p.stdout).strip()}")
    return "NFS client mount over loopback failed: " + " | ".join(errors)


def is_mounted(mountpoint: Path) -> bool:
    want = str(mountpoint).replace(" ", "\\040")
    return any(line.split()[1] == want for line in Path("/proc/mounts").read_text().splitlines())


def force_umount(mountpoint: Path) -> None:
    for _ in range(5):
        if not is_mounted(mountpoint):
            return
        sh("umount", "-l", str(mountpoint))
