"""ctypes declarations for libvotequorum (corosync 3, ``votequorum.h``).

Only what the corosync backend reads once per connection: initialise
without callbacks, ``votequorum_getinfo``, finalize. ``votequorum_info`` is
nine ``unsigned int`` then ``char qdevice_name[255]``; ``flags & 2`` is
VOTEQUORUM_INFO_QUORATE. (Quorum itself is computed from CPG's ring; see
``corosync``.)
"""

from __future__ import annotations

import ctypes
from ctypes import (
    POINTER,
    Structure,
    c_char,
    c_int,
    c_uint,
    c_uint64,
    c_void_p,
)

from ._cpg import _load

VOTEQUORUM_INFO_QUORATE = 2
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


def load_votequorum() -> ctypes.CDLL:
    lib = _load("votequorum", "libvotequorum.so.8")
    h = votequorum_handle_t
    lib.votequorum_initialize.argtypes = [POINTER(h), c_void_p]
    lib.votequorum_getinfo.argtypes = [h, c_uint, POINTER(VotequorumInfo)]
    lib.votequorum_finalize.argtypes = [h]
    for fn in ("votequorum_initialize", "votequorum_getinfo", "votequorum_finalize"):
        getattr(lib, fn).restype = c_int
    return lib


__all__ = ["load_votequorum", "VotequorumInfo"]
