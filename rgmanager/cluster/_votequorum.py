"""ctypes declarations for libvotequorum (corosync 3, ``votequorum.h``).

``votequorum_callbacks_t`` is three function pointers (quorum, expected
votes, node list); we set only the quorum notification. ``votequorum_info``
is nine ``unsigned int`` then ``char qdevice_name[255]``; ``flags & 2`` is
VOTEQUORUM_INFO_QUORATE. The quorum notification passes an array of
``votequorum_node_t { uint32_t nodeid, state; }`` (state 1 = member).
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_int,
    c_uint,
    c_uint32,
    c_uint64,
    c_void_p,
)

from ._cpg import _load

VOTEQUORUM_INFO_TWONODE = 1
VOTEQUORUM_INFO_QUORATE = 2
VOTEQUORUM_NODESTATE_MEMBER = 1
VOTEQUORUM_QDEVICE_MAX_NAME_LEN = 255

votequorum_handle_t = c_uint64


class VotequorumInfo(Structure):
    _fields_ = [
        ("node_id", c_uint),
        ("node_state", c_uint),
        ("node_votes", c_uint),
        ("node_expected_votes", c_uint),
        ("highest_expected", c_uint),
        ("total_votes", c_uint),
        ("quorum", c_uint),
        ("flags", c_uint),
        ("qdevice_votes", c_uint),
        ("qdevice_name", c_char * VOTEQUORUM_QDEVICE_MAX_NAME_LEN),
    ]


class VotequorumNode(Structure):
    _fields_ = [("nodeid", c_uint32), ("state", c_uint32)]


QuorumNotifyFn = CFUNCTYPE(None, votequorum_handle_t, c_uint64, c_uint32, c_uint32,
                           POINTER(VotequorumNode))


class VotequorumCallbacks(Structure):
    _fields_ = [
        ("votequorum_quorum_notify_fn", QuorumNotifyFn),
        ("votequorum_expectedvotes_notify_fn", c_void_p),
        ("votequorum_nodelist_notify_fn", c_void_p),
    ]


def load_votequorum() -> ctypes.CDLL:
    lib = _load("votequorum", "libvotequorum.so.8")
    h = votequorum_handle_t
    lib.votequorum_initialize.argtypes = [POINTER(h), POINTER(VotequorumCallbacks)]
    lib.votequorum_fd_get.argtypes = [h, POINTER(c_int)]
    lib.votequorum_dispatch.argtypes = [h, c_int]
    lib.votequorum_getinfo.argtypes = [h, c_uint, POINTER(VotequorumInfo)]
    lib.votequorum_trackstart.argtypes = [h, c_uint64, c_uint]
    lib.votequorum_trackstop.argtypes = [h]
    lib.votequorum_finalize.argtypes = [h]
    for fn in ("votequorum_initialize", "votequorum_fd_get", "votequorum_dispatch",
               "votequorum_getinfo", "votequorum_trackstart", "votequorum_trackstop",
               "votequorum_finalize"):
        getattr(lib, fn).restype = c_int
    return lib


__all__ = ["load_votequorum", "VotequorumInfo", "VotequorumCallbacks", "QuorumNotifyFn"]
