"""The daemon's side of the agent host: a few workers, their lifecycle, one call at a time.

Workers come in two kinds so that a long start or stop never holds up a
status check: ``check`` workers serve status/monitor/meta-data/validate-all,
``action`` workers everything else.  Each kind has a bounded number of
workers, started when first needed and reused; a caller waits for a free one
when all are busy.

A worker is its own process-group leader, like an agent process.  The
guarantees of the executor hold for a call in a worker:

* timeout (enforced): SIGTERM to the worker's group, SIGKILL after the grace,
  the worker is replaced; the caller gets a timed-out outcome with the output
  written so far;
* the worker dies during a call (``os._exit``, a segfault): the caller gets
  a crashed outcome, the worker is replaced;
* an action that leaves processes in the worker's group makes the worker
  retire (see :mod:`.worker`), so a later timeout never kills them.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol
from .output import DRAIN_WINDOW, BoundedOutput, drain_forever
from .procgroup import exited, group_alive, killpg, pidfd_open

log = logging.getLogger(__name__)

#: The checkout (or installed tree) that holds ``rgmanager`` and ``resource-agents``.
ROOT = Path(__file__).resolve().parents[2]

#: Our agents' launchers; the same code runs as an OCF executable from here.
AGENT_DIR = ROOT / "resource-agents"

#: The agents whose code lives in ``rgmanager.agentlib.<name>`` (a ``main()`` each).
BUILTIN_AGENTS = frozenset({"clusterfs", "fs", "ip", "lvm", "netfs", "nfsclient", "nfsexport",
                            "nfsserver", "script", "service"})

#: Actions served by the ``check`` workers; everything else by ``action`` workers.
CHECK_ACTIONS = frozenset({"status", "monitor", "meta-data", "metadata", "validate-all"})

#: Most workers per kind.  Workers start only when that many calls run at once,
#: so these are ceilings: a check stuck until its timeout (a dead NFS mount)
#: must not hold up every other check, and starts and stops wait on I/O.
DEFAULT_SIZES: Mapping[str, int] = {"check": 4, "action": 4}

#: Set to ``0`` to run every agent as a process (debugging, comparisons).
ENABLE_VAR = "RGMANAGER_AGENT_HOST"

_TICK = 0.05

_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from rgmanager.agenthost.worker import main; main(sys.argv[2:])")


def enabled() -> bool:
    return os.environ.get(ENABLE_VAR, "1").strip() != "0"


def builtin_module(agent_path: str) -> str | None:
    """``rgmanager.agentlib.NAME`` if *agent_path* is one of our launchers, else None."""
    real = os.path.realpath(agent_path)
    name = os.path.basename(real)
    if name in BUILTIN_AGENTS and os.path.dirname(real) == str(AGENT_DIR):
        return f"rgmanager.agentlib.{name}"
    return None


def kind_of(action: str) -> str:
    return "check" if action in CHECK_ACTIONS else "action"


@dataclass(frozen=True)
class HostCall:
    """One agent action as the worker runs it: what a process would have got."""

    module: str
    argv: Sequence[str]
    env: Mapping[str, str]
    merge_stderr: bool = True
    entry: str = "main"


@dataclass(frozen=True)
class HostOutcome:
    """``raw_rc`` is the agent's exit code, or the worker's exit status after a
    timeout or crash (negative: killed by that signal)."""

    raw_rc: int
    output: str
    timed_out: bool = False
    crashed: bool = False


class HostWorker:
    """One worker process and the socket to it; used by one caller at a time."""

    def __init__(self, env: Mapping[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(ROOT), str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(env), cwd="/",
                start_new_session=True, restore_signals=True, close_fds=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.pid = self.proc.pid
        self.usable = True
        self._reader = protocol.FrameReader()
        log.debug("agent host worker %d started", self.pid)

    def alive(self) -> bool:
        return self.usable and not exited(self.pid)

    def call(self, call: HostCall, *, timeout: float | None, enforce: bool,
             kill_grace: float, label: str) -> HostOutcome:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        output = BoundedOutput()
        request = {"module": call.module, "entry": call.entry, "argv": list(call.argv),
                   "env": dict(call.env), "merge_stderr": call.merge_stderr,
                   "check_leftovers": kind_of(call.argv[1] if len(call.argv) > 1 else "")
                   == "action"}
        try:
            protocol.send(self.sock, request, [write_fd])
        except OSError as exc:
            os.close(read_fd)
            self.usable = False
            log.error("%s: agent host worker %d is gone (%s)", label, self.pid, exc)
            return HostOutcome(self._reap(), "agent host worker is gone", crashed=True)
        finally:
            os.close(write_fd)
        pipe_open = True
        deadline = time.monotonic() + timeout if timeout is not None else None
        outcome: HostOutcome | None = None
        try:
            while outcome is None:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    deadline = None
                    if enforce:
                        outcome = self._timed_out(timeout or 0.0, kill_grace, label)
                        break
                    log.warning("%s exceeded its timeout of %g s (not enforced)", label, timeout)
                fds: list[int | socket.socket] = [self.sock]
                if pipe_open:
                    fds.append(read_fd)
                wait = None if deadline is None else max(0.0, deadline - now)
                ready, _, _ = select.select(fds, [], [], wait)
                if pipe_open and read_fd in ready:
                    pipe_open = self._read_into(read_fd, output)
                if self.sock in ready:
                    outcome = self._receive(label)
            # The agent is done: read what is still coming, for a short while.
            settle = time.monotonic()
            while pipe_open:
                left = settle + DRAIN_WINDOW - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    break
                pipe_open = self._read_into(read_fd, output)
        finally:
            if pipe_open:
                threading.Thread(target=drain_forever, args=(read_fd, label),
                                 name="agenthost-drain", daemon=True).start()
            if outcome is None:  # an exception (KeyboardInterrupt) in the middle of a call
                self.usable = False
                killpg(self.pid, signal.SIGKILL)
        return HostOutcome(outcome.raw_rc, output.text(), outcome.timed_out, outcome.crashed)

    @staticmethod
    def _read_into(fd: int, output: BoundedOutput) -> bool:
        data = os.read(fd, 65536)
        if data:
            output.add(data)
            return True
        os.close(fd)
        return False

    def _receive(self, label: str) -> HostOutcome | None:
        data = self.sock.recv(65536)
        if not data:
            self.usable = False
            status = self._reap()
            log.error("%s: agent host worker %d died during the call (status %d); "
                      "a new one will be started", label, self.pid, status)
            return HostOutcome(status, "", crashed=True)
        self._reader.feed(data)
        reply = self._reader.frame()
        if reply is None:
            return None
        if reply.get("retire"):
            self.usable = False
            log.debug("%s left processes in worker %d's group; the worker retires",
                      label, self.pid)
        return HostOutcome(int(reply["rc"]), "")

    def _timed_out(self, timeout: float, kill_grace: float, label: str) -> HostOutcome:
        """SIGTERM the worker's group, SIGKILL it after the grace; the worker is gone."""
        self.usable = False
        log.error("%s timed out after %g seconds; sending SIGTERM to its process group",
                  label, timeout)
        killpg(self.pid, signal.SIGTERM)
        term_sent = time.monotonic()
        pidfd = pidfd_open(self.pid)
        try:
            while True:
                gone = exited(self.pid)
                if gone and not group_alive(self.pid, self.pid):
                    break  # everything obeyed SIGTERM
                left = term_sent + kill_grace - time.monotonic()
                if left <= 0:
                    log.error("%s still running %g seconds after SIGTERM; sending SIGKILL "
                              "to its process group", label, kill_grace)
                    killpg(self.pid, signal.SIGKILL)
                    break
                if pidfd is not None and not gone:
                    select.select([pidfd], [], [], left)
                else:
                    time.sleep(min(_TICK, left))
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return HostOutcome(self._reap(), "", timed_out=True)

    def _reap(self) -> int:
        """Wait for the worker to exit (it is exiting or killed) and return its status."""
        self.sock.close()
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            killpg(self.pid, signal.SIGKILL)
            return self.proc.wait()

    def close(self) -> None:
        """EOF on the socket ends an idle worker."""
        self.usable = False
        self.sock.close()


@dataclass
class Pool:
    """Bounded sets of workers per kind, shared by the daemon's threads."""

    env: Mapping[str, str]
    sizes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._idle: dict[str, list[HostWorker]] = {k: [] for k in self.sizes}
        self._busy: dict[str, int] = dict.fromkeys(self.sizes, 0)
        self._all: set[HostWorker] = set()
        self._retired: list[HostWorker] = []
        self._closed = False

    def run(self, call: HostCall, *, timeout: float | None, enforce: bool, kill_grace: float,
            label: str) -> HostOutcome:
        """Run *call* in a worker of its kind; raises OSError only if none can be started."""
        kind = kind_of(call.argv[1] if len(call.argv) > 1 else "")
        worker = self._acquire(kind)
        try:
            return worker.call(call, timeout=timeout, enforce=enforce, kill_grace=kill_grace,
                               label=label)
        finally:
            self._release(kind, worker)

    def worker_pids(self) -> list[int]:
        """Live workers (for CPU accounting in benchmarks)."""
        with self._cond:
            return sorted(w.pid for w in self._all if not exited(w.pid))

    def close(self) -> None:
        """End idle workers (busy ones end when their call returns to a closed pool)."""
        with self._cond:
            self._closed = True
            workers = [w for idle in self._idle.values() for w in idle]
            for idle in self._idle.values():
                idle.clear()
        for w in workers:
            w.close()
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                killpg(w.pid, signal.SIGKILL)
                w.proc.wait()
            with self._cond:
                self._all.discard(w)
        self._reap_retired()

    def _acquire(self, kind: str) -> HostWorker:
        with self._cond:
            while True:
                idle = self._idle[kind]
                while idle:
                    worker = idle.pop()
                    if worker.alive():
                        self._busy[kind] += 1
                        return worker
                    self._discard(worker)
                if self._busy[kind] < self.sizes[kind]:
                    self._busy[kind] += 1
                    break
                self._cond.wait()
        try:
            worker = HostWorker(self.env)
        except BaseException:
            with self._cond:
                self._busy[kind] -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._all.add(worker)
        return worker

    def _release(self, kind: str, worker: HostWorker) -> None:
        with self._cond:
            self._busy[kind] -= 1
            if self._closed:
                worker.close()
            if worker.usable:
                self._idle[kind].append(worker)
            else:
                self._discard(worker)
            self._cond.notify()
        self._reap_retired()

    def _discard(self, worker: HostWorker) -> None:
        """Forget *worker* (caller holds the lock); it is reaped once it has exited."""
        self._all.discard(worker)
        if worker.proc.returncode is None:
            try:
                worker.sock.close()
            except OSError:
                pass
            self._retired.append(worker)

    def _reap_retired(self) -> None:
        with self._cond:
            self._retired = [w for w in self._retired if w.proc.poll() is None]
