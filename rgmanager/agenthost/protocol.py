"""Frames between the daemon and a host worker: a 4-byte big-endian length, then JSON.

One request, one reply, in order, over a Unix stream socket.  A request
carries one file descriptor (the write end of the call's output pipe) as
ancillary data, so the daemon reads the agent's output itself: what was
written before a timeout or a crash is kept, and processes the agent leaves
behind hold the daemon's pipe, not the worker's.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
#: A frame larger than this is a protocol error (requests carry env + argv only).
MAX_FRAME = 4 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode(message)
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    if data:
        sock.sendall(data)


def _recv_exactly(sock: socket.socket, n: int, first: bytes = b"") -> bytes | None:
    buf = bytearray(first)
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One frame and the descriptors sent with it (blocking); None at EOF."""
    head, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 4)
    if not head:
        for fd in fds:
            os.close(fd)
        return None
    full = _recv_exactly(sock, _HEADER.size, head)
    if full is None:
        return None
    (size,) = _HEADER.unpack(full)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes")
    body = _recv_exactly(sock, size)
    if body is None:
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message, list(fds)


class FrameReader:
    """Frames from a non-blocking stream, fed as bytes arrive (the daemon's side)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frame(self) -> dict[str, Any] | None:
        if len(self._buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buf)
        if size > MAX_FRAME:
            raise ProtocolError(f"frame of {size} bytes")
        if len(self._buf) < _HEADER.size + size:
            return None
        body = bytes(self._buf[_HEADER.size : _HEADER.size + size])
        del self._buf[: _HEADER.size + size]
        message = json.loads(body)
        if not isinstance(message, dict):
            raise ProtocolError("frame is not a JSON object")
        return message
