"""The corosync backend: CPG for membership, the ring and totally ordered
messages, through libcpg (ctypes); quorum computed from the ring.

One thread per backend ("corosync-delivery") owns the library handle and
runs an event loop on ``select`` over the CPG fd and a self-pipe (broadcasts
queued by other threads, stop). It calls ``deliver`` for every delivery, one
at a time, in this order:

- *CPG group confchg* -> ``MembershipChange``. Members are node names (the
  ``nodeid -> name`` mapping given to the constructor, from cluster.conf),
  unique, ordered by node id. ``joined``/``left`` are CPG's joined/left lists
  mapped to names (a name still present through another process of the same
  node is neither); a newcomer's first change lists only itself as joined,
  as CPG does.
- *CPG totem confchg* (the ring: every node whose corosync is up) updates
  ``online_nodes()``; if the quorum it gives differs from the last one
  delivered -> a ``MembershipChange`` with the *same* members, no
  joined/left, and the new flag.
- *CPG message* -> ``Message`` (JSON payloads; payloads larger than
  ``fragment_size`` are sent as several CPG messages and reassembled per
  sending process, in order, before delivery).
- *corosync gone* (``cpg_dispatch``/``mcast`` returns ``CS_ERR_LIBRARY``) ->
  ``ClusterLost``; ``membership()`` becomes empty and inquorate, queued
  broadcasts are dropped, and the loop waits for corosync again (one log
  line) and rejoins as a fresh member: its first ``MembershipChange`` lists
  this node as joined.

**Quorum is an agreed event.** Every node's planner decides from its own
copy of the table, so every input that changes a decision must sit at the
same point of every node's delivery stream. votequorum's notifications do
not: they come on their own IPC channel, and a rebooted node can hear "quorate"
after the merge it belongs to was already delivered, replay that merge as
inquorate and plan differently from everyone else (the double start that the
200-fault chaos run found). So the quorate flag is computed here, with
votequorum's arithmetic (:mod:`.quorum`), from two things that are agreed:

- the ring, from CPG's totem confchg, which corosync sends from
  ``cpg_sync_activate`` right after the group confchgs of the same ring
  change and before any message of the new ring;
- the votes, ``expected_votes`` and ``two_node`` of cluster.conf (the
  generated corosync.conf carries the same numbers).

A group confchg that comes from a ring change (a left or joined process
with reason ``nodedown``/``nodeup``) and our own join are held until the
totem confchg that follows them, so they are delivered with the quorum of
the new ring, never of the old one. Expected votes are never taken below
the sum of every configured node's votes (votequorum takes them to the
highest total it has *seen*, which differs from node to node); with
``two_node``, a node is inquorate alone until its ring has held both nodes
once (votequorum's ``wait_for_all``, which ``two_node`` turns on), or until
votequorum, read once at connection time, says corosync is past it.

votequorum is read once per connection, for that and to warn when its
threshold differs from ours (a hand-written corosync.conf with other votes).

``Membership.epoch`` counts the changes delivered by this backend object
(local to the node: corosync has no cluster-wide counter we could use).

``broadcast`` never blocks (contract point 4 in ``base``): it serialises
in the caller (a non-JSON payload fails there), queues, and wakes the loop, which sends with
``cpg_mcast_joined(CPG_TYPE_AGREED)`` once this node has joined, retrying
``CS_ERR_TRY_AGAIN`` with a short backoff (the loop keeps dispatching
meanwhile). It may be called from inside ``deliver``.

If corosync is not running at ``start()``, the loop logs one line and
retries ``cpg_model_initialize`` with backoff (0.1 s doubling to 1 s) until it
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
from . import quorum
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
                 group: str = "rgmanager", *, fragment_size: int = FRAGMENT_SIZE,
                 votes: Mapping[str, int] | None = None, expected_votes: int = 0,
                 two_node: bool = False) -> None:
        """``nodes`` maps corosync node ids to cluster.conf names; ``votes``
        (default 1 per node), ``expected_votes`` (0: the sum of the votes) and
        ``two_node`` are cluster.conf's, for the quorum computed here."""
        super().__init__(local_node)
        self._wire = Wire(fragment_size)
        self.nodes = {int(k): v for k, v in nodes.items()}
        if local_node not in self.nodes.values():
            raise ValueError(f"{local_node!r} is not in the node map {self.nodes!r}")
        self.group = group
        self._group_name = cpg.cpg_name(group)
        self._votes = {name: 1 for name in self.nodes.values()}
        self._votes.update(votes or {})
        self._expected = quorum.effective_expected(expected_votes, sum(self._votes.values()))
        self._two_node = two_node
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
        self._events: list[tuple[Any, ...]] = []  # filled by the C callbacks
        self._joined = False  # our own first confchg was processed
        self._local_nodeid = 0
        self._members_raw: set[tuple[int, int]] = set()
        self._ring: frozenset[int] = frozenset()  # node ids of the last totem confchg
        self._ring_known = False  # a totem confchg came on this connection
        # Group confchgs waiting for the ring change they belong to.
        self._held: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = []
        self._group: tuple[str, ...] = ()  # members as of the last group confchg
        self._both_seen = False  # two_node: the ring held both nodes (wait_for_all)
        # The C callbacks and structs must live as long as the handle.
        self._cpg_model = cpg.CpgModelV1Data(
            cpg.CPG_MODEL_V1, cpg.DeliverFn(self._on_deliver), cpg.ConfchgFn(self._on_confchg),
            cpg.TotemConfchgFn(self._on_totem_confchg),
            cpg.CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF)
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
        """Nodes in corosync's ring (the last totem confchg delivered), by node
        id; ``membership().members`` are those whose rgmanager joined our group."""
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
        lib = self._cpg_lib
        assert lib is not None
        handle = ctypes.c_uint64()
        rc = lib.cpg_model_initialize(ctypes.byref(handle), cpg.CPG_MODEL_V1,
                                      ctypes.byref(self._cpg_model), None)
        if rc != cpg.CS_OK:
            return f"cpg_model_initialize: {cpg.cs_error(rc)}"
        self._cpg_handle = handle.value
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
        self._read_votequorum()
        try:
            self._retry(lambda: lib.cpg_join(self._cpg_handle, ctypes.byref(self._group_name)),
                        "cpg_join")
        except _Lost as err:
            self._disconnect()
            return str(err)
        log.info("connected to corosync as node id %d; joined CPG group %s",
                 nodeid.value, self.group)
        sdnotify.notify(f"STATUS=connected to corosync as node id {nodeid.value}")
        return None

    def _read_votequorum(self) -> None:
        """One look at votequorum: is corosync past two_node's wait_for_all,
        and does it count votes as we do? Only a warning if it is not there."""
        vlib = self._vq_lib
        assert vlib is not None
        vhandle = ctypes.c_uint64()
        rc = vlib.votequorum_initialize(ctypes.byref(vhandle), None)
        if rc != cpg.CS_OK:
            log.warning("votequorum_initialize: %s; quorum is computed from the ring and "
                        "cluster.conf's votes alone", cpg.cs_error(rc))
            return
        try:
            info = vq.VotequorumInfo()
            rc = vlib.votequorum_getinfo(vhandle.value, self._local_nodeid, ctypes.byref(info))
            if rc != cpg.CS_OK:
                log.warning("votequorum_getinfo: %s", cpg.cs_error(rc))
                return
            if self._two_node and info.flags & vq.VOTEQUORUM_INFO_QUORATE:
                self._both_seen = True
            ours = quorum.quorum_threshold(self._expected, self._two_node)
            if info.quorum != ours:
                log.warning("votequorum needs %d votes for quorum but cluster.conf gives %d "
                            "(expected votes %d, two_node %s); rgmanager places services "
                            "by cluster.conf's count: make corosync.conf's votes match "
                            "(rgmanager --write-corosync-conf)", info.quorum, ours,
                            self._expected, self._two_node)
        finally:
            vlib.votequorum_finalize(vhandle.value)

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
        self._cpg_handle = None
        self._joined = False
        self._held = []
        self._group = ()
        self._ring = frozenset()
        self._ring_known = False
        # A restarted corosync waits for both nodes again (wait_for_all), and
        # so do we: read again from votequorum at the next connection.
        self._both_seen = False
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
        self._ring = frozenset()
        if dropped:
            log.warning("dropped %d queued broadcast(s) with the lost connection", dropped)
        self._call(ClusterLost(reason))

    def _session(self) -> None:
        lib = self._cpg_lib
        assert lib is not None
        cfd = ctypes.c_int()
        rc = lib.cpg_fd_get(self._cpg_handle, ctypes.byref(cfd))
        if rc != cpg.CS_OK:
            raise _Lost(f"cpg_fd_get: {cpg.cs_error(rc)}")
        retry_at: float | None = None  # next mcast attempt after CS_ERR_TRY_AGAIN
        delay = _RETRY_FIRST
        while not self._stopping.is_set():
            timeout = None if retry_at is None else max(0.0, retry_at - _now())
            r, _, _ = select.select([self._wake_r, cfd.value], [], [], timeout)
            if self._wake_r in r:
                self._drain_wake()
            if self._stopping.is_set():
                return
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

    def _on_totem_confchg(self, handle: int, ring_id: Any, n_members: int,
                          members: Any) -> None:
        try:
            self._events.append(("ring", [members[i] for i in range(n_members)]))
        except Exception:
            log.exception("CPG totem confchg callback failed")

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
            if ev[0] == "ring":
                self._ring_change(ev[1])
                continue
            if ev[0] == "msg":
                self._release_held("a message came first")
                self._message(ev[1], ev[2], ev[3])
            else:
                self._confchg(ev[1], ev[2], ev[3])

    def _quorate(self) -> bool:
        """votequorum's rule over the agreed ring and cluster.conf's votes."""
        if self._two_node and not self._both_seen:
            return False  # wait_for_all: not quorate alone before both met once
        votes = sum(self._votes.get(self._name(n), 0) for n in self._ring)
        return quorum.quorate(votes, self._expected, self._two_node)

    def _confchg(self, members: list[tuple[int, int, int]], left: list[tuple[int, int, int]],
                 joined: list[tuple[int, int, int]]) -> None:
        # CPG's first confchg on a handle is always its own join.
        first = not self._joined
        ring_change = any(reason in (cpg.CPG_REASON_NODEDOWN, cpg.CPG_REASON_NODEUP)
                          for _, _, reason in left + joined)
        if not (first or ring_change):
            self._release_held("a process join or leave came first")
        previous = self._group
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
        for n, _pid, reason in left:
            if n not in now_ids:
                log.info("CPG: %s left (%s)", self._name(n), cpg.CPG_REASONS.get(reason, reason))
        self._joined = True
        self.connected.set()
        # CPG sends the initial totem confchg once, after the first join it
        # processes on this node: normally ours, but another process's join
        # (any CPG group) in the moment between our initialize and our join
        # brings it before ours. Then the ring is known and ours is not held.
        if (first and not self._ring_known) or ring_change:
            # Our join is followed by the initial totem confchg, a ring change's
            # group confchg by the ring's: deliver it with the quorum of that ring.
            # Until then the ring moves by what this confchg says (agreed too).
            came = {n for n, _, r in joined if r == cpg.CPG_REASON_NODEUP}
            gone = {n for n, _, r in left if r == cpg.CPG_REASON_NODEDOWN}
            if first:
                came.add(self._local_nodeid)
            self._ring = (self._ring | came) - gone
            self._group = names
            if first or names != previous:
                self._held.append((names, joined_names, left_names))
            return
        if names == previous:
            return  # another process of a member node came or went
        self._group = names
        self._change(names, joined_names, left_names, self._quorate())

    def _ring_change(self, nodeids: list[int]) -> None:
        ring = frozenset(int(n) for n in nodeids)
        self._ring = ring
        self._ring_known = True
        if self._two_node and self.nodes.keys() <= ring:
            self._both_seen = True
        online = self._names(set(ring))
        with self._lock:
            self._online = online
        quorate = self._quorate()
        held, self._held = self._held, []
        for names, joined, left in held:
            self._change(names, joined, left, quorate)
        if not held and self._joined and quorate != self._membership.quorate:
            log.info("quorum %s (ring: %s)", "regained" if quorate else "LOST",
                     ", ".join(online))
            self._change(self._membership.members, (), (), quorate)

    def _release_held(self, why: str) -> None:
        """Deliver a held group confchg whose ring change did not follow it
        (corosync always sends it; this is a guard, never expected)."""
        if not self._held:
            return
        log.warning("CPG: the ring change after a group change did not come (%s); "
                    "delivering the group change with the ring it implies", why)
        held, self._held = self._held, []
        for names, joined, left in held:
            self._change(names, joined, left, self._quorate())

    def _change(self, names: tuple[str, ...], joined: tuple[str, ...],
                left: tuple[str, ...], quorate: bool) -> None:
        with self._lock:
            m = Membership(names, quorate, self._membership.epoch + 1)
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
