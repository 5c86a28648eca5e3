"""The ``service`` agent: the container at the top of every resource tree.

It owns no resource itself; its meta-data carries the service attributes and
the child start/stop levels that order everything beneath it.
"""

from __future__ import annotations

from .ocf import (
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    AgentSpec,
    Child,
    Marker,
    Param,
    Params,
    run,
    standard_actions,
)

SPEC = AgentSpec(
    name="service",
    shortdesc="Defines a service (resource group).",
    longdesc="A service is the unit that starts, stops and fails over as a whole.",
    params=(
        Param("name", "Name of the service", primary=True, unique=True, required=True),
        Param("domain", "Failover domain"),
        Param("autostart", "Start automatically when quorum forms", "boolean", default="1"),
        Param("exclusive", "Run only on a node running no other service", "boolean",
              default="0"),
        Param("recovery", "Recovery policy: restart, relocate, disable, restart-disable",
              default="restart"),
        Param("max_restarts", "Restarts tolerated within restart_expire_time", "integer",
              default="0"),
        Param("restart_expire_time", "Seconds after which a restart is forgotten", "integer",
              default="0"),
        Param("depend", "Service this one depends on (name or service:name)"),
        Param("depend_mode", "Dependency mode: hard or soft", default="hard"),
        Param("nfslock", "Enable NFS lock workarounds", "boolean", default="0"),
        Param("nfs_client_cache", "Keep NFS client cache", "boolean", default="0"),
        Param("priority", "Service priority", "integer", default="0"),
    ),
    actions=standard_actions(status_interval=60, depths=((0, 60),)),
    children=(
        Child("lvm", 1, 9),
        Child("fs", 2, 8),
        Child("clusterfs", 3, 7),
        Child("netfs", 4, 6),
        Child("nfsexport", 5, 5),
        Child("nfsclient", 6, 4),
        Child("ip", 7, 2),
        Child("smb", 8, 3),
        Child("script", 9, 1),
    ),
    maxinstances=1,
)


def _marker(params: Params) -> Marker:
    return Marker("service", params.str("name"))


def start(params: Params) -> int:
    _marker(params).set()
    return OCF_SUCCESS


def stop(params: Params) -> int:
    _marker(params).clear()
    return OCF_SUCCESS


def status(params: Params) -> int:
    return OCF_SUCCESS if _marker(params).present() else OCF_NOT_RUNNING


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "recover": start})
