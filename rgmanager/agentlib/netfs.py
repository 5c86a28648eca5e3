"""The ``netfs`` agent: mount an NFS or CIFS export for a service.

Status is judged from /proc/mounts (source and mount point), never from
``mount`` output, and the depth-10 check lists the directory in a child
process with a timeout so that a dead server cannot hang the agent.

``options`` may hold credentials (CIFS ``password=``, ``credentials=``,
``username=user%password``): every message, log line and error shows them
redacted (:mod:`.redact`; ``ocf.run`` also filters the agent's whole log).
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from . import syscmd
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_INSTALLED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Action,
    AgentError,
    AgentSpec,
    Child,
    Param,
    Params,
    run,
    standard_actions,
    stop_then_start,
)

log = logging.getLogger(__name__)

FSTYPES = ("nfs", "nfs4", "cifs")
MOUNT_TIMEOUT = 120.0
LIST_TIMEOUT = 20.0
UMOUNT_TRIES = 3

SPEC = AgentSpec(
    name="netfs",
    shortdesc="Defines an NFS/CIFS file system mount.",
    longdesc=(
        "Mounts host:export (NFS) or //host/export (CIFS) on a mount point. Stop unmounts; "
        "with force_unmount, processes using the mount are killed and NFS mounts are finally "
        "unmounted with -f and then lazily."
    ),
    params=(
        Param("name", "Symbolic name for this file system", primary=True, unique=True,
              required=True),
        Param("mountpoint", "Path where the file system is mounted", unique=True, required=True),
        Param("host", "Server host name or address", required=True),
        Param("export", "Exported path (NFS) or share name (CIFS)", required=True),
        Param("fstype", "File system type: nfs, nfs4 or cifs", default="nfs"),
        Param("options", "Mount options (mount -o)"),
        Param("force_unmount", "Kill processes using the mount point when stopping", "boolean",
              default="0"),
        Param("no_unmount", "Leave the file system mounted on stop", "boolean", default="0"),
        Param("nfslock", "NFS lock workarounds of the service (accepted, no effect here)",
              "boolean", inherit="service%nfslock"),
    ),
    actions=(*standard_actions(status_interval=60, status_timeout=10, start_timeout=900,
                               stop_timeout=30, depths=((0, 60), (10, 60))),
             Action("recover", 900)),
    children=(Child("nfsexport", forbid=True), Child("nfsclient", forbid=True)),
)


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(esc, ch)
    return field


def mounts() -> list[tuple[str, str, str]]:
    """(source, mount point, fstype) for every line of /proc/mounts."""
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((_unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2]))
    return out


def _norm_source(source: str) -> str:
    """Compare sources without trailing slashes (the kernel keeps what was given)."""
    if source.startswith("//"):
        return source.rstrip("/").lower()
    host, sep, path = source.rpartition(":")
    if not sep:
        return source
    path = os.path.normpath(path) if path else "/"
    return f"{host.lower()}:{path}"


def fstype(params: Params) -> str:
    value = params.str("fstype").strip().lower()
    if value not in FSTYPES:
        raise AgentError(OCF_ERR_CONFIGURED, f"fstype {value!r} is not one of {', '.join(FSTYPES)}")
    return value


def device(params: Params) -> str:
    """The mount source: host:/export for NFS, //host/share for CIFS."""
    host = params.str("host").strip()
    export = params.str("export").strip()
    if fstype(params) == "cifs":
        return f"//{host}/{export.lstrip('/')}"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    if not export.startswith("/"):
        export = "/" + export
    return f"{host}:{export}"


def mountpoint(params: Params) -> str:
    mp = params.str("mountpoint")
    if not os.path.isabs(mp):
        raise AgentError(OCF_ERR_CONFIGURED, f"mountpoint {mp!r} is not absolute")
    return os.path.normpath(mp)


def mounted_here(mp: str) -> list[tuple[str, str]]:
    """(source, fstype) of everything mounted on ``mp``, oldest first."""
    return [(src, fst) for src, point, fst in mounts() if point == mp]


def is_mounted(params: Params) -> bool:
    want = _norm_source(device(params))
    return any(_norm_source(src) == want for src, _ in mounted_here(mountpoint(params)))


def validate(params: Params) -> int:
    fst = fstype(params)
    device(params)
    mountpoint(params)
    if shutil.which("mount") is None:
        raise AgentError(OCF_ERR_INSTALLED, "mount is not installed")
    helper = "mount.cifs" if fst == "cifs" else "mount.nfs"
    if shutil.which(helper) is None:
        raise AgentError(OCF_ERR_INSTALLED, f"{helper} is not installed "
                         f"({'cifs-utils' if fst == 'cifs' else 'nfs-common'})")
    return OCF_SUCCESS


def start(params: Params) -> int:
    validate(params)
    dev, mp, fst = device(params), mountpoint(params), fstype(params)
    if is_mounted(params):
        return OCF_SUCCESS
    others = mounted_here(mp)
    if others:
        raise AgentError(OCF_ERR_GENERIC, f"{mp} already has {others[-1][0]} ({others[-1][1]}) "
                         "mounted on it")
    if os.path.exists(mp) and not os.path.isdir(mp):
        raise AgentError(OCF_ERR_GENERIC, f"mount point {mp} exists and is not a directory")
    os.makedirs(mp, exist_ok=True)
    argv = ["mount", "-t", fst]
    options = (params.get("options") or "").strip()
    if options:
        argv += ["-o", options]
    argv += [dev, mp]
    syscmd.run(argv, timeout=MOUNT_TIMEOUT, check=True)
    if not is_mounted(params):
        raise AgentError(OCF_ERR_GENERIC, f"mount of {dev} on {mp} reported success but "
                         "/proc/mounts does not show it")
    log.info("mounted %s on %s (%s)", dev, mp, fst)
    return OCF_SUCCESS


def _listable(mp: str) -> bool:
    """List the directory in a child process: a hung server stalls the child only.

    The listing goes to a file (``to_file``), not into memory: only whether
    it could be read matters.
    """
    try:
        p = syscmd.run(["ls", "-1", "--", mp], timeout=LIST_TIMEOUT, to_file=True)
    except syscmd.CommandError as err:
        log.error("listing %s: %s", mp, err)
        return False
    if p.rc != 0:
        said = p.said().splitlines()
        log.error("cannot list %s: %s", mp, said[-1] if said else f"rc {p.rc}")
    return p.rc == 0


def status(params: Params) -> int:
    fstype(params)
    mp = mountpoint(params)
    if not is_mounted(params):
        log.info("%s is not mounted on %s", device(params), mp)
        return OCF_NOT_RUNNING
    if params.check_level >= 10 and not _listable(mp):
        return OCF_ERR_GENERIC
    return OCF_SUCCESS


def _umount(argv: list[str]) -> str:
    """Run one umount; the error text on failure, "" on success."""
    p = syscmd.run(argv, timeout=60)
    return "" if p.rc == 0 else p.said() or f"rc {p.rc}"


def stop(params: Params) -> int:
    fstype(params)
    mp = mountpoint(params)
    if not is_mounted(params):
        return OCF_SUCCESS
    if params.bool("no_unmount"):
        log.info("no_unmount is set: leaving %s mounted", mp)
        return OCF_SUCCESS
    force = params.bool("force_unmount")
    error = ""
    for attempt in range(UMOUNT_TRIES):
        error = _umount(["umount", mp])
        if not error or not is_mounted(params):
            log.info("unmounted %s", mp)
            return OCF_SUCCESS
        log.warning("umount %s failed (attempt %d): %s", mp, attempt + 1, error)
        if not force:
            break
        if shutil.which("fuser") and is_mounted(params):
            # Only while mp is still a mount point: on a plain directory -m would
            # name every process of the enclosing (e.g. root) file system.
            # -m: every process using the file system mounted on mp; -k: SIGKILL.
            syscmd.run(["fuser", "-km", mp], timeout=30)
        time.sleep(1)
    if force and fstype(params) != "cifs":
        for argv in (["umount", "-f", mp], ["umount", "-l", mp]):
            error = _umount(argv)
            if not error or not is_mounted(params):
                log.warning("unmounted %s with %s", mp, argv[1])
                return OCF_SUCCESS
    if not is_mounted(params):
        return OCF_SUCCESS
    raise AgentError(OCF_ERR_GENERIC, f"cannot unmount {mp}: {error}"
                     + ("" if force else " (force_unmount is off)"))


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status,
                      "recover": stop_then_start(stop, start), "validate-all": validate})
