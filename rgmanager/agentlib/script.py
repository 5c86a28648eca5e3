"""The ``script`` agent: wraps an LSB init script (``/etc/init.d/NAME``-style).

The script is run as ``[file, action]`` with no shell in between, and its
LSB exit codes are translated to OCF: status 0 running -> 0, 3 not running
-> 7, "dead but pid/lock file exists" (1, 2), unknown (4) and anything else
-> 1, so the manager can tell a cleanly stopped program (restart it) from a
broken one.  Start and stop: 0 -> 0, anything else -> 1.  Start and stop
idempotence is the script's job, as LSB requires of it.

Checks before running ``file``: unset -> 6 (not configured); missing or not
executable -> 5 (not installed) for start, status and validate-all.  A stop
of a script that does not exist succeeds: nothing it could have started can
be running, and failing the stop would only block failover.
"""

from __future__ import annotations

import logging
import os

from . import syscmd
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_INSTALLED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    AgentError,
    AgentSpec,
    Param,
    Params,
    run,
    standard_actions,
)

log = logging.getLogger(__name__)

#: LSB status exit code -> OCF exit code.
LSB_STATUS = {0: OCF_SUCCESS, 3: OCF_NOT_RUNNING}

SPEC = AgentSpec(
    name="script",
    shortdesc="LSB-compliant init script as a clustered resource.",
    longdesc="The script agent runs an LSB-compliant init script with start, stop "
             "and status; the script must be idempotent as LSB requires.",
    params=(
        Param("name", "Name", primary=True, unique=True, required=True),
        Param("file", "Path to script", unique=True, required=True,
              longdesc="Path to an executable LSB init script (start, stop, status)."),
        Param("service_name", "Inherit the service name", inherit="service%name",
              longdesc="The name of the service this script belongs to."),
    ),
    # Start/stop timeout 0 (none), as rgmanager's script.sh: an init script may
    # legitimately take long, and killing it halfway leaves an unknown state.
    actions=standard_actions(status_interval=30, status_timeout=30, start_timeout=0,
                             stop_timeout=0),
)


def _script(params: Params, *, missing_ok: bool = False) -> str | None:
    """The script's path, after checking it exists and is executable."""
    path = params.get("file")
    if not path:
        raise AgentError(OCF_ERR_CONFIGURED, "parameter file is not set")
    if not os.path.isfile(path):
        if missing_ok:
            return None
        raise AgentError(OCF_ERR_INSTALLED, f"script {path} does not exist")
    if not os.access(path, os.X_OK):
        if missing_ok:
            return None
        raise AgentError(OCF_ERR_INSTALLED, f"script {path} is not executable")
    return path


def _run(path: str, action: str) -> int:
    """Run ``path action`` and log its output.

    Output goes to an anonymous temporary file, not a pipe (``to_file``): a
    daemon started by the script inherits those descriptors, and a pipe it
    keeps open would make us (and the manager reading us) wait for EOF
    forever.  No timeout of our own: the manager's action timeout applies
    (start and stop have none, as in rgmanager).  A script that cannot be
    executed (a bad interpreter line) is OCF_ERR_GENERIC.
    """
    proc = syscmd.run([path, action], timeout=None, to_file=True)
    for line in proc.stdout.splitlines():
        log.info("%s %s: %s", os.path.basename(path), action, line)
    return proc.rc


def start(params: Params) -> int:
    path = _script(params)
    assert path is not None
    rc = _run(path, "start")
    if rc != 0:
        raise AgentError(OCF_ERR_GENERIC, f"{path} start returned {rc}")
    return OCF_SUCCESS


def stop(params: Params) -> int:
    path = _script(params, missing_ok=True)
    if path is None:
        log.warning("script %s is missing or not executable; nothing to stop",
                    params.get("file"))
        return OCF_SUCCESS
    rc = _run(path, "stop")
    if rc != 0:
        raise AgentError(OCF_ERR_GENERIC, f"{path} stop returned {rc}")
    return OCF_SUCCESS


def status(params: Params) -> int:
    path = _script(params)
    assert path is not None
    rc = _run(path, "status")
    ocf = LSB_STATUS.get(rc, OCF_ERR_GENERIC)
    if ocf == OCF_NOT_RUNNING:
        raise AgentError(OCF_NOT_RUNNING, f"{path} status: not running")
    if ocf != OCF_SUCCESS:
        meaning = {1: "dead, pid file exists", 2: "dead, lock file exists",
                   4: "status unknown"}.get(rc, "failed")
        raise AgentError(ocf, f"{path} status returned {rc} ({meaning})")
    return OCF_SUCCESS


def validate(params: Params) -> int:
    _script(params)
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "validate-all": validate})
