"""ctypes declarations for libcpg (corosync 3, ``include/corosync/cpg.h``).

Only what the corosync backend uses. Layouts follow the public header:
``struct cpg_name { uint32_t length; char value[128]; }``,
``struct cpg_address { uint32_t nodeid, pid, reason; }``,
``struct cpg_ring_id { uint32_t nodeid; uint64_t seq; }`` (passed *by value*
to the totem confchg callback), and ``cpg_model_v1_data_t`` = model, deliver,
confchg and totem confchg function pointers, flags. Every call returns a
``cs_error_t``.

We initialise with ``cpg_model_initialize(CPG_MODEL_V1)`` rather than
``cpg_initialize`` for one reason: the totem confchg callback. corosync's CPG
service sends it from ``cpg_sync_activate``, right after the group confchgs
of the same ring change and before any message of the new ring, so the ring
membership it carries sits at one agreed point of the delivery stream on
every node (votequorum's notifications do not: they travel on another IPC
channel). ``CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF`` makes CPG send the
current ring right after our own join.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_int,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_void_p,
)

# corotypes.h
CS_OK = 1
CS_ERR_LIBRARY = 2
CS_ERR_TRY_AGAIN = 6
CS_DISPATCH_ALL = 2
CS_TRACK_CURRENT = 1
CS_TRACK_CHANGES = 2

CS_ERRORS = {
    1: "CS_OK", 2: "CS_ERR_LIBRARY", 3: "CS_ERR_VERSION", 4: "CS_ERR_INIT",
    5: "CS_ERR_TIMEOUT", 6: "CS_ERR_TRY_AGAIN", 7: "CS_ERR_INVALID_PARAM",
    8: "CS_ERR_NO_MEMORY", 9: "CS_ERR_BAD_HANDLE", 10: "CS_ERR_BUSY", 11: "CS_ERR_ACCESS",
    12: "CS_ERR_NOT_EXIST", 13: "CS_ERR_NAME_TOO_LONG", 14: "CS_ERR_EXIST",
    15: "CS_ERR_NO_SPACE", 16: "CS_ERR_INTERRUPT", 17: "CS_ERR_NAME_NOT_FOUND",
    18: "CS_ERR_NO_RESOURCES", 19: "CS_ERR_NOT_SUPPORTED", 20: "CS_ERR_BAD_OPERATION",
    21: "CS_ERR_FAILED_OPERATION", 22: "CS_ERR_MESSAGE_ERROR", 23: "CS_ERR_QUEUE_FULL",
    24: "CS_ERR_QUEUE_NOT_AVAILABLE", 25: "CS_ERR_BAD_FLAGS", 26: "CS_ERR_TOO_BIG",
    27: "CS_ERR_NO_SECTIONS", 28: "CS_ERR_CONTEXT_NOT_FOUND", 30: "CS_ERR_TOO_MANY_GROUPS",
    100: "CS_ERR_SECURITY",
}


def cs_error(rc: int) -> str:
    return CS_ERRORS.get(rc, f"cs_error {rc}")


# cpg.h
CPG_TYPE_AGREED = 2
CPG_MAX_NAME_LENGTH = 128
CPG_MEMBERS_MAX = 128
CPG_REASONS = {1: "join", 2: "leave", 3: "nodedown", 4: "nodeup", 5: "procdown"}
CPG_REASON_NODEDOWN = 3
CPG_REASON_NODEUP = 4
CPG_MODEL_V1 = 1
CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF = 0x01

cpg_handle_t = c_uint64


class CpgName(Structure):
    _fields_ = [("length", c_uint32), ("value", c_char * CPG_MAX_NAME_LENGTH)]


class CpgAddress(Structure):
    _fields_ = [("nodeid", c_uint32), ("pid", c_uint32), ("reason", c_uint32)]


class Iovec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


DeliverFn = CFUNCTYPE(None, cpg_handle_t, POINTER(CpgName), c_uint32, c_uint32,
                      c_void_p, c_size_t)
ConfchgFn = CFUNCTYPE(None, cpg_handle_t, POINTER(CpgName),
                      POINTER(CpgAddress), c_size_t,
                      POINTER(CpgAddress), c_size_t,
                      POINTER(CpgAddress), c_size_t)


class CpgRingId(Structure):
    _fields_ = [("nodeid", c_uint32), ("seq", c_uint64)]


TotemConfchgFn = CFUNCTYPE(None, cpg_handle_t, CpgRingId, c_uint32, POINTER(c_uint32))


class CpgModelV1Data(Structure):
    _fields_ = [("model", c_int), ("cpg_deliver_fn", DeliverFn),
                ("cpg_confchg_fn", ConfchgFn), ("cpg_totem_confchg_fn", TotemConfchgFn),
                ("flags", c_uint)]


def cpg_name(group: str) -> CpgName:
    raw = group.encode()
    if not raw or len(raw) > CPG_MAX_NAME_LENGTH:
        raise ValueError(f"CPG group name must be 1..{CPG_MAX_NAME_LENGTH} bytes: {group!r}")
    name = CpgName()
    name.length = len(raw)
    name.value = raw
    return name


def load_cpg() -> ctypes.CDLL:
    """libcpg with argument/result types set; OSError if it is not installed."""
    lib = _load("cpg", "libcpg.so.4")
    h = cpg_handle_t
    lib.cpg_model_initialize.argtypes = [POINTER(h), c_int, POINTER(CpgModelV1Data), c_void_p]
    lib.cpg_fd_get.argtypes = [h, POINTER(c_int)]
    lib.cpg_dispatch.argtypes = [h, c_int]
    lib.cpg_join.argtypes = [h, POINTER(CpgName)]
    lib.cpg_leave.argtypes = [h, POINTER(CpgName)]
    lib.cpg_mcast_joined.argtypes = [h, c_int, POINTER(Iovec), c_uint]
    lib.cpg_membership_get.argtypes = [h, POINTER(CpgName), POINTER(CpgAddress), POINTER(c_int)]
    lib.cpg_local_get.argtypes = [h, POINTER(c_uint)]
    lib.cpg_finalize.argtypes = [h]
    for fn in ("cpg_model_initialize", "cpg_fd_get", "cpg_dispatch", "cpg_join", "cpg_leave",
               "cpg_mcast_joined", "cpg_membership_get", "cpg_local_get", "cpg_finalize"):
        getattr(lib, fn).restype = c_int
    return lib


def _load(short: str, soname: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(soname)
    except OSError:
        found = ctypes.util.find_library(short)
        if found is None:
            raise OSError(f"{soname} not found (install corosync's client libraries, "
                          f"e.g. Debian's lib{short}*)") from None
        return ctypes.CDLL(found)


__all__ = ["load_cpg", "cpg_name", "cs_error"]
