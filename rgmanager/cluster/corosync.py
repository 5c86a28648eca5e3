"""The corosync backend: CPG for membership and totally ordered messages,
votequorum for quorum, through libcpg/libvotequorum (ctypes).

One thread per backend ("corosync-delivery") owns both library handles and
runs an event loop on ``select`` over the CPG fd, the votequorum fd and a
self-pipe (broadcasts queued by other threads, stop). It calls ``deliver`` for
every delivery, one at a time, in this order:

- *CPG confchg* -> ``MembershipChange``. Members are node names (the
  ``nodeid -> name`` mapping given to the constructor, from cluster.conf),
  unique, ordered by node id. ``joined``/``left`` are CPG's joined/left lists
  mapped to names (a name still present through another process of the same
  node is neither); a newcomer's first change lists only itself as joined,
  as CPG does. The ``quorate`` flag of every confchg is read synchronously
  from votequorum (``votequorum_getinfo``) when the confchg is processed, so
  it is never older than the membership it comes with (corosync activates
  votequorum's sync before CPG's, so a confchg is never delivered before the
  quorum that results from it).
- *votequorum notification* whose quorate flag differs from the last one
  delivered -> a ``MembershipChange`` with the *same* members, no
  joined/left, and the new flag, at the point where the notification is
  dispatched by this loop. Notifications that do not flip the flag only
  update ``online_nodes()``. votequorum and CPG are two IPC channels: the
  position of such a quorum-only change relative to messages is local to
  each node (it is not part of CPG's total order); every node does see it.
- *CPG message* -> ``Message`` (JSON payloads; payloads larger than
  ``fragment_size`` are sent as several CPG messages and reassembled per
  sending process, in order, before delivery).
- *corosync gone* (``cpg_dispatch``/``votequorum_dispatch``/``mcast``
  returns ``CS_ERR_LIBRARY``) -> ``ClusterLost``; ``membership()`` becomes
  empty and inquorate, queued broadcasts are dropped, and the loop waits for
  corosync again (one log line) and rejoins as a fresh member: its first
  ``MembershipChange`` lists this node as joined.

``Membership.epoch`` counts the changes delivered by this backend object
(local to the node: corosync has no cluster-wide counter we could use).

``broadcast`` never blocks (contract point 4 in ``base``): it serialises
in the caller (a non-JSON payload fails there), queues, and wakes the loop, which sends with
``cpg_mcast_joined(CPG_TYPE_AGREED)`` once this node has joined, retrying
``CS_ERR_TRY_AGAIN`` with a short backoff (the loop keeps dispatching
meanwhile). It may be called from inside ``deliver``.

If corosync is not running at ``start()``, the loop logs one line and
retries ``cpg_initialize`` with backoff (0.1 s doubling to 1 s) until it
succeeds or ``stop()`` is called.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .. import sdnotify
from . import _cpg as cpg
from . import _votequorum as vq
from .base import Cluster, ClusterLost, DeliverFn, Membership, MembershipChange, Message

log = logging.getLogger(__name__)

#: Payloads above this many bytes (JSON) are fragmented.
FRAGMENT_SIZE = 512 * 1024
#: Wire header of every CPG message we send: magic, per-process message
#: sequence number, fragment index, fragment count.
_HEADER = struct.Struct("!4sQII")
_MAGIC = b"RGM\x01"
_RETRY_FIRST = 0.001  # CS_ERR_TRY_AGAIN backoff for join/mcast
_RETRY_MAX = 0.2
_CONNECT_FIRST = 0.1  # waiting for corosync
_CONNECT_MAX = 1.0


class Wire:
    """Our wire format on CPG: a payload is JSON, cut into fragments of at most
    ``fragment_size`` bytes, each behind a header (magic, per-process message
    sequence number, fragment index, fragment count); the receiving side
    reassembles per sending process (CPG keeps one sender's messages in
    order). ``encode`` may be called from any thread (under the caller's
    lock); ``decode``/``forget``/``clear`` from the delivery thread only.
    """

    def __init__(self, fragment_size: int = FRAGMENT_SIZE) -> None:
        if fragment_size < 1024:
            raise ValueError("fragment_size must be at least 1024 bytes")
        self.fragment_size = fragment_size
        self._seq = 0
        self._partial: dict[tuple[int, int], tuple[int, list[bytes]]] = {}

    def encode(self, payload: Mapping[str, Any]) -> list[bytes]:
        """The CPG messages carrying ``payload``; a non-JSON payload raises here."""
        if not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a mapping, not {type(payload).__name__}")
        data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        self._seq += 1
        size = self.fragment_size
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        return [_HEADER.pack(_MAGIC, self._seq, i, len(chunks)) + c
                for i, c in enumerate(chunks)]

    def decode(self, nodeid: int, pid: int, data: bytes) -> dict[str, Any] | None:
        """The payload completed by this CPG message, or None (more fragments to
        come, or the message was dropped: foreign, out of sequence, not JSON)."""
        if len(data) < _HEADER.size or data[:4] != _MAGIC:
            log.warning("ignoring a foreign CPG message (%d bytes) from node id %d pid %d",
                        len(data), nodeid, pid)
            return None
        _, seq, index, count = _HEADER.unpack_from(data)
        chunk = data[_HEADER.size:]
        key = (nodeid, pid)
        if count > 1:
            have = self._partial.get(key)
            if index == 0:
                have = (seq, [])
                self._partial[key] = have
            if have is None or have[0] != seq or len(have[1]) != index:
                log.warning("dropping fragment %d/%d of message %d from node id %d: "
                            "out of sequence", index + 1, count, seq, nodeid)
                self._partial.pop(key, None)
                return None
            have[1].append(chunk)
            if index + 1 < count:
                return None
            del self._partial[key]
            chunk = b"".join(have[1])
        try:
            payload = json.loads(chunk)
        except ValueError as err:
            log.warning("ignoring a CPG message from node id %d that is not JSON: %s",
                        nodeid, err)
            return None
        if not isinstance(payload, dict):
            log.warning("ignoring a CPG message from node id %d: not a JSON object", nodeid)
            return None
        return payload

    def forget(self, nodeid: int, pid: int) -> None:
        """A sender left: drop its unfinished message."""
        self._partial.pop((nodeid, pid), None)

    def clear(self) -> None:
        self._partial.clear()

    @property
    def unfinished(self) -> int:
        """Senders whose message is partly received."""
        return len(self._partial)


class _Lost(Exception):
    """corosync went away (internal)."""


class _Stopped(Exception):
    """stop() was called while connecting (internal)."""


class CorosyncCluster(Cluster):
    def __init__(self, local_node: str, nodes: Mapping[int, str],
                 group: str = "rgmanager", *, fragment_size: int = FRAGMENT_SIZE) -> None:
        super().__init__(local_node)
        self._wire = Wire(fragment_size)
        self.nodes = {int(k): v for k, v in nodes.items()}
        if local_node not in self.nodes.values():
            raise ValueError(f"{local_node!r} is not in the node map {self.nodes!r}")
        self.group = group
        self._group_name = cpg.cpg_name(group)
        self._lock = threading.Lock()
        self._membership = Membership((), False, 0)
        self._online: tuple[str, ...] = ()
        self._sendq: deque[list[bytes]] = deque()  # broadcasts not fully sent
        self._sent_frags = 0  # fragments of _sendq[0] already sent
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._deliver: DeliverFn | None = None
        # Library state, touched only by the loop thread.
        self._cpg_lib: ctypes.CDLL | None = None
        self._vq_lib: ctypes.CDLL | None = None
        self._cpg_handle: int | None = None
        self._vq_handle: int | None = None
        self._events: list[tuple[Any, ...]] = []  # filled by the C callbacks
        self._joined = False  # our own first confchg was processed
        self._local_nodeid = 0
        self._quorate = False  # last known (delivered) quorate flag
        self._members_raw: set[tuple[int, int]] = set()
        # The C callbacks and structs must live as long as the handles.
        self._cpg_callbacks = cpg.CpgCallbacks(cpg.DeliverFn(self._on_deliver),
                                               cpg.ConfchgFn(self._on_confchg))
        self._vq_callbacks = vq.VotequorumCallbacks(vq.QuorumNotifyFn(self._on_quorum),
                                                    None, None)
        self.connected = threading.Event()  # set while joined (for tests/tools)

    # ------------------------------------------------------------ interface

    def start(self, deliver: DeliverFn) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._cpg_lib = cpg.load_cpg()
        self._vq_lib = vq.load_votequorum()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._deliver = deliver
        self._stopping.clear()
        self._thread = threading.Thread(target=self._main, name="corosync-delivery",
                                        daemon=True)
        self._thread.start()

    def broadcast(self, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self._sendq.append(self._wire.encode(payload))
        self._wake()

    def membership(self) -> Membership:
        with self._lock:
            return self._membership

    def online_nodes(self) -> tuple[str, ...]:
        """Nodes corosync sees as members (votequorum's node list), by node id;
        ``membership().members`` are those whose rgmanager joined our group."""
        with self._lock:
            return self._online

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake()
        if thread is not threading.current_thread():
            thread.join(timeout=10)
            if thread.is_alive():
                log.error("corosync delivery thread did not stop within 10 s")
        # From the loop thread itself (stop() inside deliver) the loop sees the
        # flag once deliver returns. Either way the loop finalizes the handles
        # and closes the self-pipe on its way out.

    # --------------------------------------------------------------- thread

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):  # full pipe: already awake
                    os.write(self._wake_w, b"x")

    def _close_pipe(self) -> None:
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1

    def _main(self) -> None:
        waiting_logged = False
        try:
            while not self._stopping.is_set():
                try:
                    self._connect(waiting_logged)
                except _Stopped:
                    break
                waiting_logged = False
                try:
                    self._session()
                except _Lost as lost:
                    self._disconnect()
                    if self._stopping.is_set():
                        break
                    log.error("lost the connection to corosync (%s); this node is out of the "
                              "cluster until corosync is back", lost)
                    self._lost(str(lost))
                    waiting_logged = True
                    continue
                break  # stopping
        except Exception:  # never a traceback into nowhere: log and end the thread
            log.exception("corosync delivery loop failed")
        finally:
            self._disconnect()
            self._close_pipe()
            self._thread = None

    def _wait_wake(self, timeout: float) -> None:
        """Wait up to ``timeout`` for stop() or a broadcast (drained)."""
        r, _, _ = select.select([self._wake_r], [], [], timeout)
        if r:
            self._drain_wake()
        if self._stopping.is_set():
            raise _Stopped

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _connect(self, waiting_logged: bool) -> None:
        """Connect to corosync and join the group; retry until stop()."""
        delay = _CONNECT_FIRST
        while True:
            if self._stopping.is_set():
                raise _Stopped
            problem = self._try_connect()
            if problem is None:
                return
            if not waiting_logged:
                log.warning("corosync is not available (%s); waiting for it", problem)
                sdnotify.notify(f"STATUS=waiting for corosync ({problem})")
                waiting_logged = True
            else:
                log.debug("corosync still not available (%s)", problem)
            self._wait_wake(delay)
            delay = min(delay * 2, _CONNECT_MAX)

    def _try_connect(self) -> str | None:
        lib, vlib = self._cpg_lib, self._vq_lib
        assert lib is not None and vlib is not None
        handle = ctypes.c_uint64()
        rc = lib.cpg_initialize(ctypes.byref(handle), ctypes.byref(self._cpg_callbacks))
        if rc != cpg.CS_OK:
            return f"cpg_initialize: {cpg.cs_error(rc)}"
        self._cpg_handle = handle.value
        vhandle = ctypes.c_uint64()
        rc = vlib.votequorum_initialize(ctypes.byref(vhandle), ctypes.byref(self._vq_callbacks))
        if rc != cpg.CS_OK:
            self._disconnect()
            return f"votequorum_initialize: {cpg.cs_error(rc)} (is the quorum provider " \
                   "corosync_votequorum configured?)"
        self._vq_handle = vhandle.value
        nodeid = ctypes.c_uint()
        rc = lib.cpg_local_get(self._cpg_handle, ctypes.byref(nodeid))
        if rc != cpg.CS_OK:
            self._disconnect()
            return f"cpg_local_get: {cpg.cs_error(rc)}"
        self._local_nodeid = nodeid.value
        name = self.nodes.get(nodeid.value)
        if name != self.local_node:
            log.error("corosync says this is node id %d (%s) but we run as %s; the node ids "
                      "of cluster.conf and corosync.conf must match",
                      nodeid.value, name or "not in cluster.conf", self.local_node)
        try:
            self._quorate = self._getinfo_quorate()
            rc = vlib.votequorum_trackstart(self._vq_handle, 0,
                                            cpg.CS_TRACK_CURRENT | cpg.CS_TRACK_CHANGES)
            if rc != cpg.CS_OK:
                raise _Lost(f"votequorum_trackstart: {cpg.cs_error(rc)}")
            self._retry(lambda: lib.cpg_join(self._cpg_handle, ctypes.byref(self._group_name)),
                        "cpg_join")
        except _Lost as err:
            self._disconnect()
            return str(err)
        log.info("connected to corosync as node id %d; joined CPG group %s",
                 nodeid.value, self.group)
        sdnotify.notify(f"STATUS=connected to corosync as node id {nodeid.value}")
        return None

    def _retry(self, call: Any, what: str) -> None:
        delay = _RETRY_FIRST
        while True:
            rc = call()
            if rc == cpg.CS_OK:
                return
            if rc != cpg.CS_ERR_TRY_AGAIN:
                raise _Lost(f"{what}: {cpg.cs_error(rc)}")
            self._wait_wake(delay)
            delay = min(delay * 2, _RETRY_MAX)

    def _disconnect(self) -> None:
        if self._cpg_handle is not None and self._cpg_lib is not None:
            self._cpg_lib.cpg_finalize(self._cpg_handle)
        if self._vq_handle is not None and self._vq_lib is not None:
            self._vq_lib.votequorum_finalize(self._vq_handle)
        self._cpg_handle = self._vq_handle = None
        self._joined = False
        self._events.clear()
        self._wire.clear()
        self._members_raw.clear()
        self.connected.clear()

    def _lost(self, reason: str) -> None:
        with self._lock:
            dropped = len(self._sendq)
            self._sendq.clear()
            self._sent_frags = 0
            self._membership = Membership((), False, self._membership.epoch)
            self._online = ()
        self._quorate = False
        if dropped:
            log.warning("dropped %d queued broadcast(s) with the lost connection", dropped)
        self._call(ClusterLost(reason))

    def _session(self) -> None:
        lib, vlib = self._cpg_lib, self._vq_lib
        assert lib is not None and vlib is not None
        cfd, vfd = ctypes.c_int(), ctypes.c_int()
        rc = lib.cpg_fd_get(self._cpg_handle, ctypes.byref(cfd))
        if rc != cpg.CS_OK:
            raise _Lost(f"cpg_fd_get: {cpg.cs_error(rc)}")
        rc = vlib.votequorum_fd_get(self._vq_handle, ctypes.byref(vfd))
        if rc != cpg.CS_OK:
            raise _Lost(f"votequorum_fd_get: {cpg.cs_error(rc)}")
        retry_at: float | None = None  # next mcast attempt after CS_ERR_TRY_AGAIN
        delay = _RETRY_FIRST
        while not self._stopping.is_set():
            timeout = None if retry_at is None else max(0.0, retry_at - _now())
            r, _, _ = select.select([self._wake_r, cfd.value, vfd.value], [], [], timeout)
            if self._wake_r in r:
                self._drain_wake()
            if self._stopping.is_set():
                return
            # votequorum first: if both are ready, the quorum news is older.
            if vfd.value in r:
                rc = vlib.votequorum_dispatch(self._vq_handle, cpg.CS_DISPATCH_ALL)
                if rc != cpg.CS_OK:
                    raise _Lost(f"votequorum_dispatch: {cpg.cs_error(rc)}")
            if cfd.value in r:
                rc = lib.cpg_dispatch(self._cpg_handle, cpg.CS_DISPATCH_ALL)
                if rc != cpg.CS_OK:
                    raise _Lost(f"cpg_dispatch: {cpg.cs_error(rc)}")
            self._process_events()
            if self._stopping.is_set():
                return
            if retry_at is not None and _now() < retry_at:
                continue
            if self._flush():
                retry_at = None
                delay = _RETRY_FIRST
            else:
                retry_at = _now() + delay
                delay = min(delay * 2, _RETRY_MAX)

    def _flush(self) -> bool:
        """Send queued fragments; False if corosync said CS_ERR_TRY_AGAIN."""
        if not self._joined:
            return True  # sent once our own join has been delivered
        lib = self._cpg_lib
        assert lib is not None
        while True:
            with self._lock:
                if not self._sendq:
                    return True
                frags = self._sendq[0]
                frag = frags[self._sent_frags]
            buf = ctypes.create_string_buffer(frag, len(frag))
            iov = cpg.Iovec(ctypes.cast(buf, ctypes.c_void_p), len(frag))
            rc = lib.cpg_mcast_joined(self._cpg_handle, cpg.CPG_TYPE_AGREED,
                                      ctypes.byref(iov), 1)
            if rc == cpg.CS_ERR_TRY_AGAIN:
                return False
            if rc == cpg.CS_ERR_LIBRARY:
                raise _Lost(f"cpg_mcast_joined: {cpg.cs_error(rc)}")
            with self._lock:
                if rc != cpg.CS_OK:
                    log.error("broadcast of %d bytes dropped: cpg_mcast_joined: %s",
                              sum(len(f) for f in frags), cpg.cs_error(rc))
                    self._sendq.popleft()
                    self._sent_frags = 0
                    continue
                self._sent_frags += 1
                if self._sent_frags == len(frags):
                    self._sendq.popleft()
                    self._sent_frags = 0

    # ----------------------------------------------------- C callbacks (copy only)

    def _on_deliver(self, handle: int, group: Any, nodeid: int, pid: int, msg: int,
                    length: int) -> None:
        try:
            self._events.append(("msg", nodeid, pid, ctypes.string_at(msg, length)))
        except Exception:  # an exception must not cross into C
            log.exception("CPG deliver callback failed")

    def _on_confchg(self, handle: int, group: Any, members: Any, n_members: int,
                    left: Any, n_left: int, joined: Any, n_joined: int) -> None:
        try:
            def copy(arr: Any, n: int) -> list[tuple[int, int, int]]:
                return [(arr[i].nodeid, arr[i].pid, arr[i].reason) for i in range(n)]

            self._events.append(("confchg", copy(members, n_members), copy(left, n_left),
                                 copy(joined, n_joined)))
        except Exception:
            log.exception("CPG confchg callback failed")

    def _on_quorum(self, handle: int, context: int, quorate: int, n_nodes: int,
                   nodes: Any) -> None:
        try:
            ids = sorted(nodes[i].nodeid for i in range(n_nodes)
                         if nodes[i].state == vq.VOTEQUORUM_NODESTATE_MEMBER)
            self._events.append(("quorum", bool(quorate), ids))
        except Exception:
            log.exception("votequorum notification callback failed")

    # ---------------------------------------------------------- translation

    def _name(self, nodeid: int) -> str:
        name = self.nodes.get(nodeid)
        if name is None:
            return f"nodeid:{nodeid}"
        return name

    def _names(self, nodeids: set[int]) -> tuple[str, ...]:
        return tuple(self._name(n) for n in sorted(nodeids))

    def _process_events(self) -> None:
        while self._events and not self._stopping.is_set():
            ev = self._events.pop(0)
            if ev[0] == "msg":
                self._message(ev[1], ev[2], ev[3])
            elif ev[0] == "confchg":
                self._confchg(ev[1], ev[2], ev[3])
            else:
                self._quorum(ev[1], ev[2])

    def _getinfo_quorate(self) -> bool:
        assert self._vq_lib is not None
        info = vq.VotequorumInfo()
        rc = self._vq_lib.votequorum_getinfo(self._vq_handle, self._local_nodeid,
                                             ctypes.byref(info))
        if rc == cpg.CS_ERR_LIBRARY:
            raise _Lost(f"votequorum_getinfo: {cpg.cs_error(rc)}")
        if rc != cpg.CS_OK:
            log.warning("votequorum_getinfo: %s; keeping quorate=%s", cpg.cs_error(rc),
                        self._quorate)
            return self._quorate
        return bool(info.flags & vq.VOTEQUORUM_INFO_QUORATE)

    def _confchg(self, members: list[tuple[int, int, int]], left: list[tuple[int, int, int]],
                 joined: list[tuple[int, int, int]]) -> None:
        # CPG's first confchg on a handle is always its own join.
        first = not self._joined
        previous = self._membership.members
        self._members_raw = {(n, p) for n, p, _ in members}
        for n, p, _ in left:
            self._wire.forget(n, p)
        now_ids = {n for n, _ in self._members_raw}
        names = self._names(now_ids)
        if first:
            joined_names: tuple[str, ...] = (self._name(self._local_nodeid),)
            left_names: tuple[str, ...] = ()
        else:
            joined_names = tuple(self._name(n) for n in sorted({n for n, _, _ in joined})
                                 if self._name(n) not in previous)
            left_names = tuple(self._name(n) for n in sorted({n for n, _, _ in left})
                               if n not in now_ids)
        self._quorate = self._getinfo_quorate()
        if not first and names == previous and self._quorate == self._membership.quorate:
            return  # another process of a member node came or went
        for n, _pid, reason in left:
            if n not in now_ids:
                log.info("CPG: %s left (%s)", self._name(n), cpg.CPG_REASONS.get(reason, reason))
        self._joined = True
        self.connected.set()
        self._change(names, joined_names, left_names)

    def _quorum(self, quorate: bool, ids: list[int]) -> None:
        with self._lock:
            self._online = self._names(set(ids))
        if not self._joined or quorate == self._quorate:
            if not self._joined:
                self._quorate = quorate
            return
        self._quorate = quorate
        log.info("votequorum: %s", "quorate" if quorate else "NOT quorate")
        self._change(self._membership.members, (), ())

    def _change(self, names: tuple[str, ...], joined: tuple[str, ...],
                left: tuple[str, ...]) -> None:
        with self._lock:
            m = Membership(names, self._quorate, self._membership.epoch + 1)
            self._membership = m
        self._call(MembershipChange(m, joined, left))

    def _message(self, nodeid: int, pid: int, data: bytes) -> None:
        if not self._joined:
            return
        payload = self._wire.decode(nodeid, pid, data)
        if payload is None:
            return
        self._call(Message(self._name(nodeid), payload))

    def _call(self, delivery: Any) -> None:
        if self._stopping.is_set() or self._deliver is None:
            return
        try:
            self._deliver(delivery)
        except Exception:  # the delivery loop must never die
            log.exception("delivery handler failed on %r", type(delivery).__name__)


def _now() -> float:
    return time.monotonic()


__all__ = ["ClusterLost", "CorosyncCluster", "FRAGMENT_SIZE", "Wire"]
