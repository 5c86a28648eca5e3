"""Local control socket: how ``clustat`` and ``clusvcadm`` talk to the daemon.

The CLIs are thin (argument parsing and output only), so everything they need
crosses one Unix socket as JSON: the client sends ONE object terminated by a
newline, the daemon answers with ONE object terminated by a newline and closes
the connection. One request per connection keeps the protocol trivially
robust: a hung or crashed client can never confuse the next one.

The socket is root-only (mode 0600), like rgmanager's, because whoever can
write to it can stop every service in the cluster.

No input kills the server: a request longer than :data:`MAX_REQUEST`, not
JSON, nested too deeply for the JSON parser, or not an object is answered
EINVAL. At most :data:`MAX_CONNECTIONS` connections are served at once (one
thread each); a connection over the cap is answered EAGAIN ("try again") at
once and closed, it does not wait. A client has :data:`REQUEST_READ_TIMEOUT`
seconds in all to send its request (and to take its reply), then it is dropped.

Replies carry rgmanager's return codes (negative numbers); the CLIs exit with
``code % 256`` so scripts written against rgmanager keep working.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from . import codes

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/cluster/rgmanager.sock"
#: Environment variable that overrides :data:`DEFAULT_SOCKET` (tests, unprivileged runs).
SOCKET_ENV = "RGMANAGER_SOCKET"
#: A request larger than this is refused: requests are tiny, so anything bigger is garbage.
MAX_REQUEST = 64 * 1024
#: Replies (a status of a big cluster) may be large, but not unbounded.
MAX_REPLY = 64 * 1024 * 1024
#: How long the server waits for a client to send its request (in all, not per
#: read) before dropping it; also the limit for a client to take its reply.
REQUEST_READ_TIMEOUT = 30.0
#: Connections served at once; over this a new connection is answered EAGAIN and closed.
MAX_CONNECTIONS = 64

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: ``{"op": "fence_ack", "node": NAME}``: an administrator has made sure the
#: lost member NAME is off (``clusvcadm --fence-ack``, rgmanager's
#: fence_ack_manual). The daemon turns it into the ordered ``NodeFenced``
#: event (``by`` "admin") and answers with a code like any request. Not a
#: planner ``Op``: those are requests about a service, queued per service;
#: this one is about a member and goes to the fencing side.
OP_FENCE_ACK = "fence_ack"


def fence_ack_payload(node: str) -> dict[str, Any]:
    """The control request for ``clusvcadm --fence-ack NODE``."""
    return {"op": OP_FENCE_ACK, "node": node}

# Kept for rgmanager/cli/clustat.py until it imports rgmanager.codes itself;
# everything else uses rgmanager.codes directly.
SUCCESS = codes.ESUCCESS
strerror = codes.strerror

__all__ = [
    "OP_FENCE_ACK", "ControlServer", "DaemonNotRunning", "ProtocolError", "call", "connect",
    "fence_ack_payload", "request", "socket_path",
]


def socket_path() -> str:
    """Where the daemon listens: ``$RGMANAGER_SOCKET`` or :data:`DEFAULT_SOCKET`."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class DaemonNotRunning(Exception):
    """Nobody listens on the control socket (no socket file, or connection refused)."""


class ProtocolError(Exception):
    """The daemon's reply was not one JSON object (it crashed mid-request, or is not ours)."""


# --------------------------------------------------------------------- server


class ControlServer:
    """Serves the control socket in background threads, one thread per connection.

    A connection gets its own thread because a handler may block for a long
    time (a start can take minutes) and ``clustat`` must still be answered
    meanwhile. The handler is called concurrently; it serialises what needs
    serialising itself.
    """

    def __init__(self, path: str, handler: Handler, *,
                 idle_timeout: float = REQUEST_READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 max_request: int = MAX_REQUEST) -> None:
        self.path = path
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_request = max_request
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._active = 0  # connections being served (each has its thread)
        self._active_lock = threading.Lock()

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return self._active

    def start(self) -> None:
        """Bind, restrict to root (0600) *before* listening, and serve in a daemon thread."""
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            # Nobody can connect before listen(), so chmod here leaves no window
            # in which a non-root user could get a connection accepted.
            os.chmod(self.path, 0o600)
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, name="rgmanager-control", daemon=True)
        self._thread.start()
        log.debug("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop accepting, close the socket and remove its file."""
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                # shutdown() wakes a thread blocked in accept() on Linux; close() alone does not.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _remove_stale(self) -> None:
        """Remove a socket file left by a dead daemon; refuse to steal a live one.

        Two daemons on one node would each believe they own the local services,
        so a socket someone still answers on is an error, not something to unlink.
        """
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(errno.EEXIST, "not a socket; refusing to remove", self.path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # stale: nobody listens
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, "another daemon is listening", self.path)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("control socket: accept failed")
                time.sleep(0.1)  # e.g. EMFILE: don't spin while descriptors are short
                continue
            try:
                self._dispatch(conn)
            except Exception:  # never let the accept loop die
                log.exception("control socket: cannot serve a connection")
                conn.close()

    def _dispatch(self, conn: socket.socket) -> None:
        with self._active_lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            self._refuse(conn, f"too many control connections ({self.max_connections}); "
                         "try again")
            return
        try:
            threading.Thread(target=self._handle, args=(conn,),
                             name="rgmanager-control-conn", daemon=True).start()
        except RuntimeError as e:  # can't start new thread
            with self._active_lock:
                self._active -= 1
            self._refuse(conn, f"cannot serve now ({e}); try again")

    def _refuse(self, conn: socket.socket, text: str) -> None:
        """Answer EAGAIN without reading the request, from the accept thread, and close."""
        log.warning("control connection refused: %s", text)
        with conn:
            conn.settimeout(0.5)  # a fresh socket's buffer takes this small reply at once
            _send_quietly(conn, {"code": codes.EAGAIN, "text": text})

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    raw = _read_line(conn, self.max_request,
                                     deadline=time.monotonic() + self.idle_timeout)
                    reply = self._reply_for(raw)
                    conn.settimeout(self.idle_timeout)
                    conn.sendall(_encode(reply))
                except _TooLong:
                    conn.settimeout(self.idle_timeout)
                    _send_quietly(conn, {"code": codes.EINVAL, "text": "bad request: too long"})
                except OSError as e:  # includes TimeoutError
                    # The client went away or stayed idle: nothing to tell anyone.
                    log.debug("control connection dropped: %s", e)
        except Exception:
            log.exception("control connection failed")
        finally:
            with self._active_lock:
                self._active -= 1

    def _reply_for(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return {"code": codes.EINVAL, "text": f"bad request: {e}"}
        except RecursionError:
            return {"code": codes.EINVAL, "text": "bad request: nested too deeply"}
        if not isinstance(request, dict):
            return {"code": codes.EINVAL, "text": "bad request: not a JSON object"}
        try:
            reply = self.handler(request)
            if not isinstance(reply, dict):
                raise TypeError(f"handler returned {type(reply).__name__}, not dict")
            json.dumps(reply)  # fail here, inside the handler's blame, not half-way through
        except Exception:
            log.exception("control request %r failed", request.get("op"))
            return {"code": codes.EFAIL, "text": codes.strerror(codes.EFAIL)}
        return reply


class _TooLong(Exception):
    pass


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


def _send_quietly(conn: socket.socket, obj: dict[str, Any]) -> None:
    try:
        conn.sendall(_encode(obj))
    except OSError:
        pass


def _read_line(conn: socket.socket, limit: int, deadline: float | None = None) -> bytes:
    """Read up to the first newline (or EOF); :class:`_TooLong` past ``limit`` bytes.

    With ``deadline`` (a :func:`time.monotonic` time) the whole line must have
    arrived by then, else :class:`TimeoutError`: a client trickling one byte at a
    time cannot hold its connection longer than an idle one.
    """
    buf = bytearray()
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request not received in time")
            conn.settimeout(left)
        chunk = conn.recv(65536)
        if not chunk:
            return bytes(buf)
        nl = chunk.find(b"\n")
        if nl >= 0:
            buf += chunk[:nl]
            if len(buf) > limit:
                raise _TooLong
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise _TooLong


# --------------------------------------------------------------------- client


def connect(path: str | None = None, timeout: float = 300.0) -> socket.socket:
    """Connect to the daemon; raise :class:`DaemonNotRunning` if nobody listens.

    Separate from :func:`request` so clusvcadm can learn that the daemon is down
    *before* it prints "trying to enable ...", as rgmanager did.
    """
    path = path or socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        sock.close()
        raise DaemonNotRunning(f"{path}: {e.strerror}") from e
    except BaseException:
        sock.close()
        raise
    return sock


def call(sock: socket.socket, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one request on a connected socket, return the reply, close the socket.

    A timeout raises :class:`TimeoutError` (a hung daemon); a reply that is not
    a JSON object raises :class:`ProtocolError`.
    """
    with sock:
        sock.sendall(_encode(payload))
        try:
            raw = _read_line(sock, MAX_REPLY)
        except _TooLong as e:
            raise ProtocolError("reply too long") from e
    if not raw:
        raise ProtocolError("connection closed without a reply")
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"bad reply: {e}") from e
    except RecursionError as e:
        raise ProtocolError("bad reply: nested too deeply") from e
    if not isinstance(reply, dict) or not isinstance(reply.get("code"), int):
        raise ProtocolError("bad reply: not an object with an integer code")
    return reply


def request(payload: dict[str, Any], path: str | None = None,
            timeout: float = 300.0) -> dict[str, Any]:
    """One round trip: connect, send ``payload``, return the daemon's reply.

    The default timeout is long because a start or stop waits for agents;
    ``clustat`` uses a short one so a hung daemon shows up as such.
    """
    return call(connect(path, timeout), payload)
