"""Mounting and unmounting for the ``fs`` and ``clusterfs`` agents.

Both agents mount ``device`` on ``mountpoint`` and differ only in defaults,
meta-data wording and whether ``force_fsck`` applies (a cluster file system
is mounted on several nodes at once; checking it from one node would corrupt
it).  Everything the agents do is here, parameterised by :class:`Kind`.

Identity is by device number, not by name: ``/proc/self/mountinfo`` gives
the ``major:minor`` of every mount, which is the same whether the device was
named ``/dev/mapper/x``, ``/dev/dm-0``, ``LABEL=...`` or, for an image file
mounted with ``-o loop``, whatever ``/dev/loopN`` the kernel picked.  So
status cannot be fooled by a different device mounted on our mountpoint.

Status depths: 0 mounted here; 10 the directory can be listed; 20 a test
file can be created, written, synced and removed (skipped for read-only
mounts; the file gets a fresh unique name and is opened ``O_EXCL|O_NOFOLLOW``,
so a file or symlink planted on a world-writable mount is never written
through).  ``quick_status`` limits every check to depth 0.

Stop unmounts; when the file system is busy and ``force_unmount`` is set,
the processes using it (cwd, root, executable, open files or memory maps on
its device, found by walking ``/proc``) are killed and unmounting is tried
again, up to three times.  We walk ``/proc`` ourselves rather than run
``fuser -km``: fuser given a directory that is *not* a mount point kills
every user of the parent file system, which a race with another unmount
could turn into killing half the node.

``self_fence`` (unmount impossible after all tries) logs CRIT and reboots
with ``reboot -fn`` only when ``RGMANAGER_ALLOW_SELF_FENCE=1`` is in the
environment; otherwise stop fails with 1.  ``fsid`` and ``nfslock`` are
accepted for configuration compatibility (nfsexport children read fsid);
this agent does nothing with them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import syscmd
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_INSTALLED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    AgentError,
    AgentSpec,
    Child,
    Handler,
    Param,
    Params,
    standard_actions,
)
from .redact import redact_text

#: Unmount attempts before giving up (each after killing users if allowed).
UMOUNT_TRIES = 3
#: Pause between unmount attempts, seconds.
UMOUNT_PAUSE = 1.0
#: Device specs that ``blkid -t`` resolves.
TAG_PREFIXES = ("LABEL=", "UUID=", "PARTUUID=", "PARTLABEL=")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Kind:
    """What differs between ``fs`` and ``clusterfs``."""

    agent: str
    cluster: bool


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    dev: int  # os.makedev(major, minor)
    mountpoint: str
    fstype: str
    source: str
    options: frozenset[str]


@dataclass(frozen=True)
class Device:
    """The configured ``device`` resolved on this node."""

    spec: str
    path: str | None  # block device or image file; None if it cannot be found
    is_file: bool
    devs: frozenset[int]  # device numbers a mount of it shows in mountinfo


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo (octal)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """All mounts in this mount namespace, in mount order (later ones on top)."""
    mounts = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields, rfields = left.split(" "), right.split(" ")
            if len(fields) < 6 or len(rfields) < 2:
                continue
            major, minor = (int(x) for x in fields[2].split(":"))
            opts = set(fields[5].split(","))
            if len(rfields) > 2:
                opts.update(rfields[2].split(","))
            mounts.append(Mount(os.makedev(major, minor), _unescape(fields[4]), rfields[0],
                                _unescape(rfields[1]), frozenset(opts)))
    return mounts


def loop_devices_for(image: str) -> frozenset[int]:
    """Device numbers of the loop devices backed by ``image`` (from sysfs)."""
    target = os.path.realpath(image)
    devs = set()
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return frozenset()
    for name in names:
        if not name.startswith("loop"):
            continue
        try:
            with open(f"/sys/block/{name}/loop/backing_file", encoding="utf-8") as f:
                backing = f.read().strip()
            with open(f"/sys/block/{name}/dev", encoding="utf-8") as f:
                major, minor = (int(x) for x in f.read().strip().split(":"))
        except (OSError, ValueError):
            continue  # not attached
        if backing == target:
            devs.add(os.makedev(major, minor))
    return frozenset(devs)


def _resolve_tag(spec: str) -> str | None:
    """LABEL=/UUID=... to a device path with blkid (no shell, no cache trust)."""
    blkid = shutil.which("blkid")
    if blkid is not None:
        proc = syscmd.run([blkid, "-c", "/dev/null", "-l", "-o", "device", "-t", spec])
        path = proc.stdout.strip()
        if proc.rc == 0 and path:
            return path
    key, _, value = spec.partition("=")
    link = f"/dev/disk/by-{key.lower()}/{value}"
    return link if os.path.exists(link) else None


#: The device path blkid last gave for each LABEL=/UUID=... spec in this process
#: (an agent host asks again every few seconds).  Used only by status, and only
#: to confirm a healthy mount: anything else is judged on a fresh blkid.
_tag_paths: dict[str, str] = {}


def resolve_device(spec: str, *, remembered: bool = False) -> Device:
    """Find the configured device now; a missing one has ``path=None``.

    ``remembered``: a LABEL=/UUID= spec may use the device blkid named last
    time (if that still exists) instead of running blkid (a fork, milliseconds).
    """
    path: str | None = spec
    if spec.upper().startswith(TAG_PREFIXES):
        key, _, value = spec.partition("=")
        tag = f"{key.upper()}={value}"
        path = _tag_paths.get(tag) if remembered else None
        if path is None or not os.path.exists(path):
            path = _resolve_tag(tag)
            if path is None:
                _tag_paths.pop(tag, None)
            else:
                _tag_paths[tag] = path
    if path is None or not os.path.exists(path):
        return Device(spec, None, False, frozenset())
    path = os.path.realpath(path)
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):
        return Device(spec, path, False, frozenset({st.st_rdev}))
    if stat.S_ISREG(st.st_mode):
        return Device(spec, path, True, loop_devices_for(path))
    raise AgentError(OCF_ERR_CONFIGURED, f"device {spec} is neither a block device nor a file")


def top_mount(mounts: list[Mount], mountpoint: str) -> Mount | None:
    """The mount visible at ``mountpoint`` (the last one mounted there)."""
    found = None
    for m in mounts:
        if m.mountpoint == mountpoint:
            found = m
    return found


def is_ours(m: Mount, device: Device) -> bool:
    return m.dev in device.devs or (device.path is not None and m.source == device.path)


class MountFs:
    """The actions of one fs/clusterfs resource, from its parameters."""

    def __init__(self, kind: Kind, params: Params) -> None:
        self.kind = kind
        self.params = params
        self.log = logging.getLogger(f"rgmanager.agent.{kind.agent}")
        mp = params.str("mountpoint")
        if not mp.startswith("/"):
            raise AgentError(OCF_ERR_CONFIGURED, f"mountpoint {mp} is not an absolute path")
        self.mountpoint = os.path.realpath(mp)
        if self.mountpoint == "/":
            raise AgentError(OCF_ERR_CONFIGURED, "refusing to manage the root file system")
        self.spec = params.str("device")

    # -- inspection ---------------------------------------------------------

    def state(self, *, remembered: bool = False) -> tuple[Device, Mount | None, Mount | None]:
        """(device, our mount at the mountpoint or None, whatever is on top there)."""
        device = resolve_device(self.spec, remembered=remembered)
        mounts = read_mounts()
        ours = None
        for m in mounts:
            if m.mountpoint == self.mountpoint and is_ours(m, device):
                ours = m
        return device, ours, top_mount(mounts, self.mountpoint)

    # -- actions ------------------------------------------------------------

    def start(self) -> int:
        device, ours, top = self.state()
        if ours is not None:
            if top is not ours:
                raise AgentError(OCF_ERR_GENERIC,
                                 f"{self.spec} is mounted on {self.mountpoint}, but "
                                 f"{top.source if top else '?'} is mounted over it")
            self.log.info("%s already mounted on %s", self.spec, self.mountpoint)
            return OCF_SUCCESS
        if device.path is None:
            raise AgentError(OCF_ERR_INSTALLED, f"device {self.spec} does not exist")
        if top is not None:
            raise AgentError(OCF_ERR_GENERIC, f"{top.source} is already mounted on "
                                              f"{self.mountpoint}; not mounting {self.spec}")
        elsewhere = [m.mountpoint for m in read_mounts() if is_ours(m, device)]
        if elsewhere:
            raise AgentError(OCF_ERR_GENERIC,
                             f"{self.spec} is already mounted on {', '.join(elsewhere)}")
        self._make_mountpoint()
        if self.params.bool("force_fsck") and not self.kind.cluster:
            self._fsck(device)
        argv = ["mount"]
        fstype = self.params.get("fstype")
        if fstype:
            argv += ["-t", fstype]
        options = [o for o in (self.params.get("options") or "").split(",") if o.strip()]
        if device.is_file and "loop" not in options:
            options.append("loop")
        if options:
            argv += ["-o", ",".join(o.strip() for o in options)]
        argv += [device.path, self.mountpoint]
        self.log.info("mounting %s on %s", self.spec, self.mountpoint)
        proc = syscmd.run(argv, timeout=None)  # the action's own timeout bounds it
        if proc.rc != 0:
            raise AgentError(OCF_ERR_GENERIC, f"mount {self.spec} on {self.mountpoint} failed "
                                              f"(rc {proc.rc}): "
                                              f"{redact_text(proc.stderr.strip())}")
        if self.state()[1] is None:
            raise AgentError(OCF_ERR_GENERIC, f"mount reported success but {self.spec} is not "
                                              f"mounted on {self.mountpoint}")
        return OCF_SUCCESS

    def stop(self) -> int:
        _, ours, top = self.state()
        if ours is None:
            self.log.info("%s is not mounted on %s; nothing to stop", self.spec,
                          self.mountpoint)
            return OCF_SUCCESS
        if top is not ours:
            raise AgentError(OCF_ERR_GENERIC, f"cannot unmount {self.spec}: "
                                              f"{top.source if top else '?'} is mounted over it")
        force = self.params.bool("force_unmount")
        for attempt in range(1, UMOUNT_TRIES + 1):
            proc = syscmd.run(["umount", self.mountpoint], timeout=None)
            _, ours, _ = self.state()
            if ours is None:
                self.log.info("unmounted %s from %s", self.spec, self.mountpoint)
                return OCF_SUCCESS
            self.log.warning("unmount of %s (attempt %d/%d) failed: %s", self.mountpoint,
                             attempt, UMOUNT_TRIES, proc.stderr.strip() or proc.rc)
            if force:
                self._kill_users(ours.dev)
            if attempt < UMOUNT_TRIES:
                time.sleep(UMOUNT_PAUSE)
        return self._unmount_failed()

    def status(self) -> int:
        _, ours, top = self.state(remembered=True)
        if ours is None or top is not ours:
            _, ours, top = self.state()  # judge a mismatch only on a fresh lookup
        if ours is None:
            what = f"{top.source} is mounted there instead" if top else "nothing is mounted"
            raise AgentError(OCF_NOT_RUNNING,
                             f"{self.spec} is not mounted on {self.mountpoint} ({what})")
        if top is not ours:
            raise AgentError(OCF_ERR_GENERIC, f"{top.source if top else '?'} is mounted over "
                                              f"{self.spec} on {self.mountpoint}")
        depth = 0 if self.params.bool("quick_status") else self.params.check_level
        if depth >= 10:
            try:
                os.listdir(self.mountpoint)
            except OSError as err:
                raise AgentError(OCF_ERR_GENERIC,
                                 f"cannot list {self.mountpoint}: {err}") from err
        if depth >= 20:
            if "ro" in ours.options:
                self.log.debug("%s is mounted read-only; skipping write test", self.mountpoint)
            else:
                self._write_test()
        return OCF_SUCCESS

    def validate(self) -> int:
        fstype = self.params.get("fstype")
        if fstype and any(c in fstype for c in "/ \t"):
            raise AgentError(OCF_ERR_CONFIGURED, f"fstype {fstype!r} is not a type name")
        for tool in ("mount", "umount"):
            if shutil.which(tool) is None:
                raise AgentError(OCF_ERR_INSTALLED, f"{tool} is not installed")
        return OCF_SUCCESS

    # -- helpers ------------------------------------------------------------

    def _make_mountpoint(self) -> None:
        if os.path.isdir(self.mountpoint):
            return
        if os.path.lexists(self.mountpoint):
            raise AgentError(OCF_ERR_CONFIGURED,
                             f"mountpoint {self.mountpoint} exists and is not a directory")
        self.log.info("creating mountpoint %s", self.mountpoint)
        os.makedirs(self.mountpoint, mode=0o755, exist_ok=True)

    def _fsck(self, device: Device) -> None:
        """``fsck -p``: 0 clean, 1 fixed, 2 fixed-reboot-advised; 4 and up left errors."""
        argv = ["fsck", "-p"]
        fstype = self.params.get("fstype")
        if fstype:
            argv += ["-t", fstype]
        assert device.path is not None
        argv.append(device.path)
        self.log.info("checking %s (force_fsck)", self.spec)
        proc = syscmd.run(argv, timeout=None)
        if proc.rc >= 4 or proc.rc < 0:
            raise AgentError(OCF_ERR_GENERIC, f"fsck of {self.spec} failed (rc "
                                              f"{proc.rc}): {proc.stdout.strip()} "
                                              f"{proc.stderr.strip()}")
        if proc.rc:
            self.log.warning("fsck repaired %s (rc %d)", self.spec, proc.rc)

    def _write_test(self) -> None:
        """Create, write, sync and remove a test file that nobody else can have planted.

        The mount point may be writable by anyone (mode 0777 or 1777): a fixed
        name opened with create+truncate would follow a symlink planted there
        and truncate whatever it points to, as root.  The name is unique
        (host, pid, random) and the file is opened with ``O_CREAT|O_EXCL|
        O_NOFOLLOW``, so only a file this call created is ever written; the
        descriptor, not the name, is what we write through.
        """
        name = f".writable_test.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(8)}"
        path = os.path.join(self.mountpoint, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as err:
            raise AgentError(OCF_ERR_GENERIC,
                             f"{self.mountpoint} is not writable: {err}") from err
        try:
            os.write(fd, b"rgmanager write test\n")
            os.fsync(fd)
        except OSError as err:
            raise AgentError(OCF_ERR_GENERIC,
                             f"{self.mountpoint} is not writable: {err}") from err
        finally:
            os.close(fd)
            try:
                os.unlink(path)
            except OSError as err:
                self.log.warning("cannot remove write test file %s: %s", path, err)

    def _kill_users(self, dev: int) -> None:
        """SIGKILL every process holding anything on the file system with device ``dev``."""
        for pid, comm in users_of(dev):
            self.log.warning("killing process %d (%s) using %s", pid, comm, self.mountpoint)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _unmount_failed(self) -> int:
        if not self.params.bool("self_fence"):
            force = "on" if self.params.bool("force_unmount") else "off"
            raise AgentError(OCF_ERR_GENERIC, f"could not unmount {self.mountpoint} "
                                              f"(busy; force_unmount is {force})")
        self.log.critical("could not unmount %s and self_fence is set: rebooting this node",
                          self.mountpoint)
        if os.environ.get("RGMANAGER_ALLOW_SELF_FENCE") == "1":
            syscmd.run(["reboot", "-fn"])
        else:
            self.log.critical("reboot suppressed: RGMANAGER_ALLOW_SELF_FENCE is not 1")
        return OCF_ERR_GENERIC


def users_of(dev: int) -> Iterator[tuple[int, str]]:
    """Processes with cwd, root, exe, an open file or a mapping on device ``dev``."""
    me = os.getpid()
    map_dev = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        base = f"/proc/{entry}"
        if _holds(base, dev, map_dev):
            try:
                with open(f"{base}/comm", encoding="utf-8", errors="replace") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            yield int(entry), comm


def _holds(base: str, dev: int, map_dev: str) -> bool:
    links = [f"{base}/cwd", f"{base}/root", f"{base}/exe"]
    try:
        links += [f"{base}/fd/{fd}" for fd in os.listdir(f"{base}/fd")]
    except OSError:
        pass
    for link in links:
        try:
            if os.stat(link).st_dev == dev:
                return True
        except OSError:
            continue
    try:
        with open(f"{base}/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) >= 5 and fields[3] == map_dev and fields[4] != "0":
                    return True
    except OSError:
        pass
    return False


# -- spec and dispatch -------------------------------------------------------

def make_spec(kind: Kind, shortdesc: str, longdesc: str, fstype_desc: str,
              force_unmount_default: str = "0") -> AgentSpec:
    """The meta-data shared by fs and clusterfs."""
    params = [
        Param("name", "File System Name", primary=True, unique=True, required=True),
        Param("mountpoint", "Mount Point", unique=True, required=True,
              longdesc="Path where the file system is mounted; created if missing."),
        Param("device", "Device or Label", unique=True, required=True,
              longdesc="Block device, LABEL=/UUID= spec, or an image file (mounted -o loop)."),
        Param("fstype", "File system type", longdesc=fstype_desc),
        Param("options", "Mount Options", longdesc="Comma-separated mount options."),
        Param("force_unmount", "Force Unmount", "boolean", default=force_unmount_default,
              longdesc="Kill every process using the file system if it is busy at stop."),
    ]
    if not kind.cluster:
        params.append(Param("force_fsck", "Force fsck support", "boolean", default="0",
                            longdesc="Run fsck -p before mounting."))
    params += [
        Param("self_fence", "Seppuku Unmount", "boolean", default="0",
              longdesc="Reboot this node if the file system cannot be unmounted."),
        Param("quick_status", "Quick/brief status checks", "boolean", default="0",
              longdesc="Only check that the file system is mounted (depth 0) at every depth."),
        Param("fsid", "NFS File system ID",
              longdesc="File system ID for NFS exports of this file system (passed on only)."),
        Param("nfslock", "Enable NFS lock workarounds", "boolean", inherit="service%nfslock"),
    ]
    return AgentSpec(
        name=kind.agent,
        shortdesc=shortdesc,
        longdesc=longdesc,
        params=tuple(params),
        actions=standard_actions(start_timeout=900, stop_timeout=900, recover_timeout=900,
                                 depths=((0, 60, 10), (10, 180, 30), (20, 600, 30))),
        children=(Child("fs", 1, 3), Child("clusterfs", 1, 3), Child("nfsexport", 3, 1)),
        maxinstances=0 if kind.cluster else 1,
    )


def handlers(kind: Kind) -> dict[str, Handler]:
    """start/stop/status/recover/validate-all for ``ocf.run``."""
    return {
        "start": lambda p: MountFs(kind, p).start(),
        "stop": lambda p: MountFs(kind, p).stop(),
        "status": lambda p: MountFs(kind, p).status(),
        "recover": lambda p: MountFs(kind, p).start(),
        "validate-all": lambda p: MountFs(kind, p).validate(),
    }
