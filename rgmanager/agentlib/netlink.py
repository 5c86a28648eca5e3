"""Read addresses and links from the kernel over one kept-open rtnetlink socket.

The ``ip`` agent's status needs three facts: is the address configured, on
which interface, and does that link have carrier.  pyroute2 answers them too,
but costs ~90 ms to import and ~0.5 ms per status even with its socket kept
open (every message becomes a rich object); here a status is one
RTM_GETADDR dump and one RTM_GETLINK request parsed with :mod:`struct`, a few
tens of microseconds in a long-lived agent host.  Changes to addresses stay
with pyroute2 in the ``ip`` agent (they are rare and their encoding subtle).

The socket is opened on first use and kept per process *and* network
namespace: the key is (pid, the inode of ``/proc/thread-self/ns/net``), so a
socket opened in one namespace is never asked about another (a kernel answers
for the namespace the socket was created in), and a forked child opens its
own instead of sharing its parent's.  Any error closes the socket; the
request is tried once more on a fresh one, and the next call starts fresh.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
NLA_TYPE_MASK = 0x3FFF

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # length, type
_ERRNO = struct.Struct("=i")

#: Seconds to wait for the kernel's answer before giving up on the socket.
TIMEOUT = 5.0
#: A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is redone this often.
DUMP_TRIES = 3
_BUFSIZE = 1 << 16


@dataclass(frozen=True)
class Address:
    """One configured address (RTM_NEWADDR)."""

    index: int
    prefixlen: int
    flags: int  # IFA_F_*: the 32-bit IFA_FLAGS when the kernel sends it
    address: bytes  # IFA_LOCAL if present (point-to-point), else IFA_ADDRESS


@dataclass(frozen=True)
class Link:
    """One network interface (RTM_NEWLINK)."""

    index: int
    flags: int  # IFF_*
    name: str
    mac: bytes | None


class NetlinkError(OSError):
    """The kernel answered a request with an error (errno), or not at all."""


def _attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return
        yield kind & NLA_TYPE_MASK, data[offset + _RTATTR.size:offset + length]
        offset += (length + 3) & ~3


def parse_address(data: bytes, offset: int, end: int) -> Address:
    family, prefixlen, flags, _scope, index = _IFADDRMSG.unpack_from(data, offset)
    local = address = b""
    for kind, value in _attrs(data, offset + _IFADDRMSG.size, end):
        if kind == IFA_LOCAL:
            local = value
        elif kind == IFA_ADDRESS:
            address = value
        elif kind == IFA_FLAGS and len(value) >= 4:
            flags = struct.unpack_from("=I", value)[0]
    return Address(index, prefixlen, flags, local or address)


def parse_link(data: bytes, offset: int, end: int) -> Link:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, offset)
    name, mac = "", None
    for kind, value in _attrs(data, offset + _IFINFOMSG.size, end):
        if kind == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == IFLA_ADDRESS:
            mac = value
    return Link(index, flags, name, mac)


class _Socket:
    """One rtnetlink socket and its request counter."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_ROUTE)
        # A kernel-side receive timeout keeps the socket blocking (settimeout()
        # would add a poll() to every receive).
        seconds = int(TIMEOUT)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("=qq", seconds, int((TIMEOUT - seconds) * 1e6)))
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, int, bytes, int]]:
        """Send one request; its replies as (type, flags, buffer, payload offset/end)."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        seq = self.seq
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body)
        replies: list[tuple[int, int, bytes, int]] = []
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        while True:
            data = self.sock.recv(_BUFSIZE)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, mtype, mflags, mseq, _port = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size or offset + length > len(data):
                    raise NetlinkError(0, "truncated netlink message")
                here, offset = offset, offset + ((length + 3) & ~3)
                if mseq != seq:
                    continue  # an answer to an earlier, abandoned request
                if mtype == NLMSG_DONE:
                    return replies
                if mtype == NLMSG_ERROR:
                    code = -_ERRNO.unpack_from(data, here + _NLMSGHDR.size)[0]
                    if code == 0:
                        return replies
                    raise NetlinkError(code, os.strerror(code))
                replies.append((mtype, mflags, data[here:here + length], _NLMSGHDR.size))
                if not dump:
                    return replies


class _Channel:
    """The kept socket, keyed by (pid, network namespace); safe across fork."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[int, int, int] | None = None
        self.sock: _Socket | None = None

    def forget(self) -> None:
        """Drop the socket without using it (after fork: it is the parent's)."""
        self.lock = threading.Lock()
        self.key, self.sock = None, None

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, int, bytes, int]]:
        ns = os.stat("/proc/thread-self/ns/net")
        key = (os.getpid(), ns.st_dev, ns.st_ino)
        with self.lock:
            for attempt in (1, 2):
                if self.sock is None or self.key != key:
                    self._close()
                    self.sock, self.key = _Socket(), key
                try:
                    return self.sock.request(kind, flags, body)
                except NetlinkError as err:
                    if err.errno:
                        raise  # the kernel's answer (e.g. ENODEV): the socket is fine
                    self._close()
                    if attempt == 2:
                        raise
                except OSError:
                    self._close()  # timeout, ENOBUFS, ...: never reuse this socket
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock, self.key = None, None


_channel = _Channel()
os.register_at_fork(after_in_child=_channel.forget)


def _dump(kind: int, body: bytes) -> list[tuple[int, int, bytes, int]]:
    """A dump, redone when the kernel says a change interrupted it."""
    for _ in range(DUMP_TRIES - 1):
        replies = _channel.request(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
        if not any(flags & NLM_F_DUMP_INTR for _, flags, _, _ in replies):
            return replies
    return _channel.request(kind, NLM_F_REQUEST | NLM_F_DUMP, body)


def addresses(family: int = socket.AF_UNSPEC) -> list[Address]:
    """Every address of ``family`` (AF_INET, AF_INET6, or both) in this namespace."""
    replies = _dump(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0))
    return [parse_address(data, start, len(data))
            for mtype, _, data, start in replies if mtype == RTM_NEWADDR]


def links() -> list[Link]:
    """Every network interface in this namespace."""
    replies = _dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
    return [parse_link(data, start, len(data))
            for mtype, _, data, start in replies if mtype == RTM_NEWLINK]


def link(index: int) -> Link | None:
    """The interface with ``index``, or None when there is none."""
    try:
        replies = _channel.request(RTM_GETLINK, NLM_F_REQUEST,
                                   _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))
    except NetlinkError as err:
        if err.errno == errno.ENODEV:
            return None
        raise
    for mtype, _, data, start in replies:
        if mtype == RTM_NEWLINK:
            return parse_link(data, start, len(data))
    return None
