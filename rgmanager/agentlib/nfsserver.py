"""The ``nfsserver`` agent: the kernel NFS server of one service.

Unlike ``nfsexport``, which only makes sure a server runs, ``nfsserver``
owns the server: it keeps NFS state (statd's monitor list, NFSv4 recovery
data) under the service's file system so it fails over with it, and its stop
stops nfsd.  Only the daemons this agent started itself are killed; their PIDs
are recorded in HA_RSCTMP.
"""

from __future__ import annotations

import logging
import os

from . import nfsutil
from .ocf import (
    OCF_ERR_CONFIGURED,
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

SPEC = AgentSpec(
    name="nfsserver",
    shortdesc="Defines an NFS server resource.",
    longdesc=(
        "Starts the kernel NFS server (nfsd threads, rpc.mountd, rpc.statd) for a service "
        "and keeps its state in PATH/NFSPATH (statd/, v4recovery/) on the service's file "
        "system. Stop stops nfsd and the daemons this resource started."
    ),
    params=(
        Param("name", "Name of the NFS server resource", primary=True, unique=True,
              required=True),
        Param("path", "Mount point of the file system that holds NFS state (inherited)",
              inherit="mountpoint"),
        Param("nfspath", "State directory, relative to path", default=".clumanager/nfs"),
        Param("nfslock", "NFS lock workarounds of the service (accepted, no effect here)",
              "boolean", inherit="service%nfslock"),
    ),
    actions=(*standard_actions(status_interval=30, status_timeout=10, start_timeout=90,
                               stop_timeout=90, depths=((0, 30),)),
             Action("recover", 90)),
    children=(Child("nfsclient", 1, 2), Child("ip", 2, 1), Child("nfsexport", forbid=True),
              Child("nfsserver", forbid=True)),
    maxinstances=1,
)

STATE_SUBDIRS = ("statd/sm", "statd/sm.bak", "v4recovery")


def state_path(params: Params) -> str:
    """PATH/NFSPATH, where the NFS state that must fail over lives."""
    path = params.get("path")
    if not path:
        raise AgentError(OCF_ERR_CONFIGURED, "no path: set path or put nfsserver under an fs")
    nfspath = params.str("nfspath")
    if not os.path.isabs(path):
        raise AgentError(OCF_ERR_CONFIGURED, f"path {path!r} is not absolute")
    full = os.path.normpath(os.path.join(path, nfspath))
    if os.path.relpath(full, os.path.normpath(path)).startswith(".."):
        raise AgentError(OCF_ERR_CONFIGURED, f"nfspath {nfspath!r} leaves {path}")
    return full


def _record(params: Params) -> nfsutil.Record:
    return nfsutil.Record("nfsserver", params.str("name"))


def validate(params: Params) -> int:
    state_path(params)
    nfsutil.require("rpc.nfsd", "rpc.mountd", "exportfs")
    return OCF_SUCCESS


def status(params: Params) -> int:
    threads = nfsutil.nfsd_threads()
    if threads == 0:
        log.info("nfsd is not running")
        return OCF_NOT_RUNNING
    if not nfsutil.is_running("rpc.mountd"):
        log.error("nfsd has %d threads but rpc.mountd is not running", threads)
        return OCF_NOT_RUNNING
    return OCF_SUCCESS


def start(params: Params) -> int:
    validate(params)
    state = state_path(params)
    for sub in STATE_SUBDIRS:
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    record = _record(params)
    old = record.load() or {}
    started = nfsutil.ensure_server(statd_dir=os.path.join(state, "statd"),
                                    v4_recovery_dir=os.path.join(state, "v4recovery"))
    data: dict[str, object] = {
        "nfsd": bool(old.get("nfsd")) or started.nfsd,
        "mountd": started.mountd if started.mountd is not None else old.get("mountd"),
        "statd": started.statd if started.statd is not None else old.get("statd"),
        "state": state,
    }
    record.save(data)
    log.info("NFS server running (%d nfsd threads), state in %s", nfsutil.nfsd_threads(), state)
    return OCF_SUCCESS


def stop(params: Params) -> int:
    record = _record(params)
    data = record.load() or {}
    nfsutil.stop_nfsd()
    for key, comm in (("mountd", "rpc.mountd"), ("statd", "rpc.statd")):
        pid = data.get(key)
        if isinstance(pid, int):
            nfsutil.kill_pid(pid, comm)
    record.clear()
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status,
                      "recover": stop_then_start(stop, start), "validate-all": validate})
