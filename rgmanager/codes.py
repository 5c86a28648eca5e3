"""rgmanager's reply codes, shared by the planner, the daemon and the CLIs.

Tools exit with ``code % 256`` (ERUN exits 0), so scripts written against
rgmanager's clusvcadm keep working.
"""

from __future__ import annotations

SUCCESS = 0
FAILURE = -1
EABORT = -2
ERUN = -3
ENOSERVICE = -4
EMIGRATE = -5
EAGAIN = -6
EDEPEND = -7
EINVAL = -8
EQUORUM = -9
EUNSUPPORTED = -10
EFROZEN = -11
ENODE = -12
ENOTRUNNABLE = -15
EEXCL = -16
ERELO = -17
EPERM = -18

_TEXT = {
    SUCCESS: "Success",
    FAILURE: "Failure",
    EABORT: "Aborted; service failed",
    ERUN: "Service is already running",
    ENOSERVICE: "Service does not exist",
    EAGAIN: "Temporary failure; try again",
    EDEPEND: "Operation violates dependency rule",
    EINVAL: "Invalid operation for resource",
    EQUORUM: "Operation requires quorum",
    EUNSUPPORTED: "Operation not supported",
    EFROZEN: "Failure: Service is frozen",
    ENODE: "Target node dead / nonexistent",
    ENOTRUNNABLE: "Service not runnable",
    EEXCL: "Service not runnable: cannot run exclusive",
    ERELO: "Failed; service running on original owner",
    EPERM: "Permissing denied",
}


def strerror(code: int) -> str:
    """rgmanager's ``rg_strerror``: the text clusvcadm prints for a return code."""
    return _TEXT.get(code, "Unknown error")


def is_known_code(code: int) -> bool:
    return code in _TEXT


def exit_status(code: int) -> int:
    """``code % 256``, except "already running", which is success for the caller."""
    return 0 if code == ERUN else code % 256
