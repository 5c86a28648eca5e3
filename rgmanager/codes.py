"""rgmanager's reply codes, shared by the planner, the daemon and the CLIs.

The numbers, names and texts are those of rgmanager's ``include/resgroup.h``
(``RG_E*``) and ``rg_strings.c`` (``rg_strerror``), so a reply code means the
same thing here as in rgmanager's logs, scripts and documentation. Tools exit
with ``code % 256`` (ERUN exits 0), so scripts written against rgmanager's
clusvcadm keep working.
"""

from __future__ import annotations

ESUCCESS = 0
EFAIL = -1  #: generic failure
EABORT = -2  #: aborted; service unrecoverable
EFORWARD = -3  #: service not mastered locally
ENOSERVICE = -4  #: service does not exist
EDEADLCK = -5  #: aborted: would deadlock
EAGAIN = -6  #: temporary failure; try again
EDEPEND = -7  #: operation violates a dependency rule
EINVAL = -8  #: invalid operation for the resource (e.g. migrating a non-migratable one)
EQUORUM = -9  #: operation requires quorum
ERUN = -10  #: service is already running (clusvcadm exits 0)
EFROZEN = -11  #: service is frozen
ENODE = -12  #: target node dead / nonexistent
EFENCE = -13  #: fencing operation pending
ESCRIPT = -14  #: (S/Lang) script failed
EDOMAIN = -15  #: not runnable given the online nodes and the failover domain
EEXCL = -16  #: not runnable: cannot run exclusive
ERELO = -17  #: relocation failed; service running on its original owner
EPERM = -18  #: permission denied

# Names this project used before it followed resgroup.h, still imported by
# daemon.py; they go once it spells ESUCCESS and EFAIL. No other aliases.
SUCCESS = ESUCCESS
FAILURE = EFAIL

#: Code -> rgmanager's name (without the ``RG_`` prefix).
NAMES: dict[int, str] = {
    ESUCCESS: "ESUCCESS", EFAIL: "EFAIL", EABORT: "EABORT", EFORWARD: "EFORWARD",
    ENOSERVICE: "ENOSERVICE", EDEADLCK: "EDEADLCK", EAGAIN: "EAGAIN", EDEPEND: "EDEPEND",
    EINVAL: "EINVAL", EQUORUM: "EQUORUM", ERUN: "ERUN", EFROZEN: "EFROZEN", ENODE: "ENODE",
    EFENCE: "EFENCE", ESCRIPT: "ESCRIPT", EDOMAIN: "EDOMAIN", EEXCL: "EEXCL",
    ERELO: "ERELO", EPERM: "EPERM",
}

_TEXT = {
    ESUCCESS: "Success",
    EFAIL: "Failure",
    EABORT: "Aborted; service failed",
    EFORWARD: "Service not mastered locally",
    ENOSERVICE: "Service does not exist",
    EDEADLCK: "Operation would cause a deadlock",
    EAGAIN: "Temporary failure; try again",
    EDEPEND: "Operation violates dependency rule",
    EINVAL: "Invalid operation for resource",
    EQUORUM: "Operation requires quorum",
    ERUN: "Service is already running",
    EFROZEN: "Failure: Service is frozen",
    ENODE: "Target node dead / nonexistent",
    EFENCE: "Fencing operation pending; try again later",
    ESCRIPT: "S/Lang Script Error",
    EDOMAIN: "Service not runnable",
    EEXCL: "Service not runnable: cannot run exclusive",
    ERELO: "Failed; service running on original owner",
    EPERM: "Permissing denied",  # sic: rgmanager's spelling, which scripts may grep
}


def strerror(code: int) -> str:
    """rgmanager's ``rg_strerror``: the text clusvcadm prints for a return code."""
    return _TEXT.get(code, "Unknown error")


def is_known_code(code: int) -> bool:
    return code in _TEXT


def exit_status(code: int) -> int:
    """``code % 256``, except "already running", which is success for the caller."""
    return 0 if code == ERUN else code % 256
