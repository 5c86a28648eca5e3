"""The ``nfsclient`` agent: export one path to one NFS client target.

The path and fsid normally come from the parent ``nfsexport``/``fs`` by
inheritance, so one service can export its file system to several targets,
each a separate resource that fails and recovers on its own.
"""

from __future__ import annotations

import logging
import os

from . import syscmd
from .nfsutil import find_export, require
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Action,
    AgentError,
    AgentSpec,
    Param,
    Params,
    run,
    standard_actions,
)

log = logging.getLogger(__name__)

SPEC = AgentSpec(
    name="nfsclient",
    shortdesc="Defines an NFS client (an export of the parent's path to one target).",
    longdesc=(
        "Exports the inherited path to a host, network, @netgroup or * with exportfs. "
        "Status reads exportfs -v, so an export removed behind the cluster's back is noticed."
    ),
    params=(
        Param("name", "Name of this client resource", primary=True, unique=True, required=True),
        Param("target", "Client: host name or address, network (a.b.c.d/n), @netgroup or *",
              required=True),
        Param("path", "Path to export (normally inherited)", inherit="path"),
        Param("fsid", "File system ID (normally inherited)", inherit="fsid"),
        Param("options", "Export options (exportfs -o), e.g. rw,sync,no_root_squash"),
        Param("allow_recover", "Let recover re-export in place instead of failing the service",
              "boolean", default="1"),
        Param("service_name", "Name of the enclosing service", inherit="service%name"),
        Param("use_cache", "Use the client cache of the service (accepted, no effect here)",
              "boolean", inherit="service%nfs_client_cache"),
    ),
    actions=(*standard_actions(status_interval=30, status_timeout=10, start_timeout=90,
                               stop_timeout=90, depths=((0, 30),)),
             Action("recover", 90)),
)


def _path(params: Params) -> str:
    path = params.get("path")
    if not path:
        raise AgentError(OCF_ERR_CONFIGURED, "no path: set path or inherit it from nfsexport/fs")
    if not os.path.isabs(path):
        raise AgentError(OCF_ERR_CONFIGURED, f"path {path!r} is not absolute")
    return os.path.normpath(path)


def _target(params: Params) -> str:
    target = params.str("target").strip()
    bad = (not target or any(c.isspace() or c in "()" for c in target)
           or (":" in target and not _is_ipv6(target)))
    if bad:
        raise AgentError(OCF_ERR_CONFIGURED, f"target {target!r} is not a host, network, "
                         "@netgroup or *")
    return target


def _is_ipv6(target: str) -> bool:
    return all(c in "0123456789abcdefABCDEF:." for c in target) and target.count(":") >= 2


def _options(params: Params) -> str:
    """The -o string: the user's options plus fsid= (unless they gave one)."""
    opts = [o for o in (params.get("options") or "").split(",") if o.strip()]
    fsid = params.get("fsid")
    if fsid and not any(o.strip().startswith("fsid=") for o in opts):
        opts.append(f"fsid={fsid}")
    return ",".join(o.strip() for o in opts)


def _spec_arg(target: str, path: str) -> str:
    # exportfs splits CLIENT:PATH at the first ':' followed by '/'; IPv6 needs brackets.
    if _is_ipv6(target):
        target = f"[{target}]"
    return f"{target}:{path}"


def validate(params: Params) -> int:
    require("exportfs")
    _path(params)
    _target(params)
    return OCF_SUCCESS


def status(params: Params) -> int:
    require("exportfs")
    path, target = _path(params), _target(params)
    if find_export(target, path) is None:
        log.info("%s is not exported to %s", path, target)
        return OCF_NOT_RUNNING
    return OCF_SUCCESS


def start(params: Params) -> int:
    validate(params)
    path, target = _path(params), _target(params)
    if not os.path.isdir(path):
        raise AgentError(OCF_ERR_GENERIC, f"cannot export {path}: not a directory "
                         "(is the parent file system mounted?)")
    argv = ["exportfs", "-i"]
    opts = _options(params)
    if opts:
        argv += ["-o", opts]
    argv.append(_spec_arg(target, path))
    syscmd.run(argv, check=True)
    if find_export(target, path) is None:
        raise AgentError(OCF_ERR_GENERIC, f"exportfs ran but {path} is not exported to {target}")
    log.info("exported %s to %s (%s)", path, target, opts or "default options")
    return OCF_SUCCESS


def stop(params: Params) -> int:
    require("exportfs")
    path, target = _path(params), _target(params)
    if find_export(target, path) is None:
        return OCF_SUCCESS
    syscmd.run(["exportfs", "-u", _spec_arg(target, path)], check=True)
    if find_export(target, path) is not None:
        raise AgentError(OCF_ERR_GENERIC, f"{path} is still exported to {target}")
    log.info("unexported %s from %s", path, target)
    return OCF_SUCCESS


def recover(params: Params) -> int:
    """Re-export in place when allowed; otherwise fail so the service restarts."""
    if not params.bool("allow_recover"):
        raise AgentError(OCF_ERR_GENERIC, "allow_recover is off: recovery needs a restart")
    stop(params)
    return start(params)


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "recover": recover,
                      "validate-all": validate})
