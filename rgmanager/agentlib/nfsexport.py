"""The ``nfsexport`` agent: a grouping resource for ``nfsclient`` exports.

Like rgmanager's nfsexport.sh it makes sure the kernel NFS server runs when
it starts, and it hands ``path`` (and ``fsid``) down to its nfsclient children
by inheritance.  It does not own the server: stop leaves nfsd running for the
other services and only forgets that this resource was started (a Marker),
so that status answers 7 after stop.
"""

from __future__ import annotations

import logging
import os

from . import nfsutil
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    AgentError,
    AgentSpec,
    Child,
    Marker,
    Param,
    Params,
    run,
    standard_actions,
)

log = logging.getLogger(__name__)

SPEC = AgentSpec(
    name="nfsexport",
    shortdesc="Defines an NFS export (container for nfsclient resources).",
    longdesc=(
        "Ensures the kernel NFS server (nfsd, rpc.mountd) is running and passes the parent "
        "file system's mount point and fsid on to the nfsclient resources beneath it."
    ),
    params=(
        Param("name", "Descriptive name for this export", primary=True, unique=True,
              required=True),
        Param("device", "Device of the exported file system (inherited)", inherit="device"),
        Param("path", "Path of the exported file system (inherited)", inherit="mountpoint"),
        Param("fsid", "File system ID of the exported file system (inherited)",
              inherit="fsid"),
    ),
    actions=standard_actions(status_interval=5, status_timeout=10, start_timeout=60,
                             stop_timeout=60, depths=((0, 5),)),
    children=(Child("nfsclient"), Child("nfsexport", forbid=True)),
)


def _marker(params: Params) -> Marker:
    return Marker("nfsexport", params.str("name"))


def validate(params: Params) -> int:
    path = params.get("path")
    if path and not os.path.isabs(path):
        raise AgentError(OCF_ERR_CONFIGURED, f"path {path!r} is not absolute")
    nfsutil.require("rpc.nfsd", "rpc.mountd", "exportfs")
    return OCF_SUCCESS


def start(params: Params) -> int:
    validate(params)
    nfsutil.ensure_server()
    _marker(params).set()
    return OCF_SUCCESS


def stop(params: Params) -> int:
    _marker(params).clear()
    return OCF_SUCCESS


def status(params: Params) -> int:
    if not _marker(params).present():
        return OCF_NOT_RUNNING
    if not nfsutil.server_running():
        log.error("NFS server is down (nfsd threads %d, rpc.mountd %s)", nfsutil.nfsd_threads(),
                  "running" if nfsutil.is_running("rpc.mountd") else "not running")
        return OCF_NOT_RUNNING
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "recover": start,
                      "validate-all": validate})
