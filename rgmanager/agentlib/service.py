"""The ``service`` agent: the container at the top of every resource tree.

It owns no resource itself; its meta-data carries the service attributes and
the child start/stop levels that order everything beneath it.

The policy attributes are ``reconfig="1"``: the manager alone reads them
(placement, recovery, dependencies), nothing this agent or a child does
depends on them, so a reload that changes only them must not restart the
service. rgmanager marks four of them so (domain, autostart, exclusive,
recovery); the restart counters, dependencies and priority are policy here
too, so we mark them as well. ``nfslock`` and ``nfs_client_cache`` change
what children do and stay restart-worthy.
"""

from __future__ import annotations

from .ocf import (
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Action,
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
        Param("domain", "Failover domain", reconfig=True),
        Param("autostart", "Start automatically when quorum forms", "boolean", default="1",
              reconfig=True),
        Param("exclusive", "Run only on a node running no other service", "boolean",
              default="0", reconfig=True),
        Param("recovery", "Recovery policy: restart, relocate, disable, restart-disable",
              default="restart", reconfig=True),
        Param("max_restarts", "Restarts tolerated within restart_expire_time", "integer",
              default="0", reconfig=True),
        Param("restart_expire_time", "Seconds after which a restart is forgotten", "integer",
              default="0", reconfig=True),
        Param("depend", "Service this one depends on (name or service:name)", reconfig=True),
        Param("depend_mode", "Dependency mode: hard or soft", default="hard", reconfig=True),
        Param("nfslock", "Enable NFS lock workarounds", "boolean", default="0"),
        Param("nfs_client_cache", "Keep NFS client cache", "boolean", default="0"),
        Param("priority", "Service priority", "integer", default="0", reconfig=True),
    ),
    actions=[*standard_actions(status_interval=60, depths=((0, 60),)), Action("reconfig", 5)],
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


def reconfig(params: Params) -> int:
    """Nothing to do: the changed attributes are the manager's policy, read from the
    new configuration; the service's marker (its name) cannot change here."""
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "recover": start,
                      "reconfig": reconfig})
