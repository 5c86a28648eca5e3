"""The object the manager drives on the coordinator: one fencing thread per lost node.

The manager calls :meth:`Fencer.fence` for every node the planner put in
its "awaiting fence" set while this node is the coordinator, and
:meth:`Fencer.cancel` / :meth:`Fencer.cancel_all` when that stops being
true (the node is no longer awaited: fenced or acknowledged; this node is no
longer the coordinator).  Success is reported through ``on_fenced(node,
method, device)``; the manager turns it into the ordered ``NodeFenced``
message.

Why threads and cancels rather than a long call: fencing may take minutes
(rounds until a device answers) and must never hold up the delivery of
messages.  Why "start again from scratch" is the only recovery: an attempt
keeps nothing that another node would need, so when the coordinator dies
the next one simply calls :meth:`fence` itself.  For that to be cheap and
safe here too, a new attempt for a node whose cancelled attempt is still
inside an agent waits for that agent to finish first (bounded by the agent
timeout), so two agents never drive one device for one node at once.

A cancelled attempt never reports success, with one narrow exception: a
cancel that races the very moment an agent succeeded may still see one
``on_fenced``.  The node really was fenced; the planner ignores a
``NodeFenced`` for a node that is not awaiting fence.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from ..config.model import ClusterConfig
from ..executor import run_program
from .agent import DEFAULT_AGENT_TIMEOUT, DeviceOutcome, Runner, run_call
from .calls import DeviceCall, fence_plan
from .rounds import DEFAULT_ROUND_PAUSE, DEFAULT_WARN_INTERVAL, FenceSuccess, fence_node

log = logging.getLogger(__name__)

OnFenced = Callable[[str, str, str], None]


class FenceStart(enum.Enum):
    """What :meth:`Fencer.fence` did."""

    STARTED = "started"
    ALREADY = "already fencing"
    #: Started too, but the node has no method: it only warns once a minute
    #: (and picks up a method from a reload) until cancelled.
    CANNOT_FENCE = "cannot fence"


class _Attempt:
    """One node's fencing thread and the signals it waits on."""

    def __init__(self, node: str, previous: _Attempt | None) -> None:
        self.node = node
        self.previous = previous
        self.successor: _Attempt | None = None
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None
        self._cv = threading.Condition()
        self._cancelled = False
        self._poked = False

    @property
    def cancelled(self) -> bool:
        with self._cv:
            return self._cancelled

    def cancel(self) -> None:
        with self._cv:
            self._cancelled = True
            self._cv.notify_all()

    def poke(self) -> None:
        """End the current pause early (the configuration changed, a predecessor ended)."""
        with self._cv:
            self._poked = True
            self._cv.notify_all()

    def _wait(self, seconds: float, pokeable: bool) -> bool:
        deadline = time.monotonic() + max(0.0, seconds)
        with self._cv:
            while not self._cancelled and not (pokeable and self._poked):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            if pokeable:
                self._poked = False
            return self._cancelled

    def pause(self, seconds: float) -> bool:
        """A pause between rounds or warnings: ends early on cancel or poke."""
        return self._wait(seconds, pokeable=True)

    def delay(self, seconds: float) -> bool:
        """A device's delay: only a cancel shortens it (it is there for safety)."""
        return self._wait(seconds, pokeable=False)


class Fencer:
    """Fences lost nodes through cluster.conf, one thread per node (see the module doc)."""

    def __init__(self, config: ClusterConfig, on_fenced: OnFenced, *,
                 runner: Runner = run_program,
                 agent_timeout: float = DEFAULT_AGENT_TIMEOUT,
                 round_pause: float = DEFAULT_ROUND_PAUSE,
                 warn_interval: float = DEFAULT_WARN_INTERVAL,
                 search_path: str | None = None) -> None:
        self._config = config
        self._on_fenced = on_fenced
        self._runner = runner
        self._agent_timeout = agent_timeout
        self._round_pause = round_pause
        self._warn_interval = warn_interval
        self._search_path = search_path
        self._lock = threading.Lock()
        self._attempts: dict[str, _Attempt] = {}   # current, one per node
        self._latest: dict[str, _Attempt] = {}     # newest per node, maybe cancelled, maybe running

    # ------------------------------------------------------------------ API

    def set_config(self, config: ClusterConfig) -> None:
        """Use *config* from the next round on; waiting attempts look at once."""
        with self._lock:
            self._config = config
            attempts = list(self._attempts.values())
        for attempt in attempts:
            attempt.poke()

    def fence(self, node: str) -> FenceStart:
        """Start fencing *node* unless it is already being fenced.

        Returns at once; the rounds run in a thread of their own.
        """
        with self._lock:
            if node in self._attempts:
                return FenceStart.ALREADY
            previous = self._latest.get(node)
            if previous is not None and previous.finished.is_set():
                previous = None
            attempt = _Attempt(node, previous)
            if previous is not None:
                previous.successor = attempt
            self._attempts[node] = attempt
            self._latest[node] = attempt
            has_method = bool(fence_plan(self._config, node))
            attempt.thread = threading.Thread(target=self._run, args=(attempt,),
                                              name=f"fence-{node}", daemon=True)
        log.info("fencing %s: started%s", node,
                 "" if previous is None else " (after the cancelled attempt's agent ends)")
        attempt.thread.start()
        return FenceStart.STARTED if has_method else FenceStart.CANNOT_FENCE

    def cancel(self, node: str) -> bool:
        """Stop fencing *node*; False if it was not being fenced."""
        with self._lock:
            attempt = self._attempts.pop(node, None)
        if attempt is None:
            return False
        attempt.cancel()
        log.info("fencing %s: cancelled", node)
        return True

    def cancel_all(self) -> None:
        with self._lock:
            nodes = list(self._attempts)
        for node in nodes:
            self.cancel(node)

    def fencing(self) -> frozenset[str]:
        """Nodes with an attempt in progress (not cancelled, not yet fenced)."""
        with self._lock:
            return frozenset(self._attempts)

    def close(self, timeout: float | None = None) -> None:
        """Cancel everything and wait for the threads (an agent may run to its timeout)."""
        self.cancel_all()
        with self._lock:
            threads = [a.thread for a in self._latest.values() if a.thread is not None]
        for thread in threads:
            thread.join(timeout)

    # ------------------------------------------------------------- internals

    def _current_config(self) -> ClusterConfig:
        with self._lock:
            return self._config

    def _run(self, attempt: _Attempt) -> None:
        try:
            previous = attempt.previous
            while previous is not None and not previous.finished.is_set():
                if attempt.pause(self._agent_timeout):
                    return
            attempt.previous = None  # let it be collected
            result = self._rounds(attempt)
            if result is not None:
                self._report(attempt, result)
        finally:
            attempt.finished.set()
            with self._lock:
                successor = attempt.successor
                if self._latest.get(attempt.node) is attempt:
                    del self._latest[attempt.node]
                if self._attempts.get(attempt.node) is attempt:
                    # Ended without a cancel and without success: only a bug gets here.
                    del self._attempts[attempt.node]
            if successor is not None:
                successor.poke()

    def _rounds(self, attempt: _Attempt) -> FenceSuccess | None:
        """:func:`fence_node`, restarted after a pause should it ever raise (a bug)."""
        def run(call: DeviceCall) -> DeviceOutcome:
            return run_call(call, runner=self._runner, timeout=self._agent_timeout,
                            cancelled=attempt.delay, search_path=self._search_path)

        while not attempt.cancelled:
            try:
                return fence_node(attempt.node, config=self._current_config,
                                  run=run, wait=attempt.pause, round_pause=self._round_pause,
                                  warn_interval=self._warn_interval)
            except Exception:
                log.exception("fencing %s: internal error; starting over in %g s",
                              attempt.node, self._round_pause)
                if attempt.pause(self._round_pause):
                    return None
        return None

    def _report(self, attempt: _Attempt, result: FenceSuccess) -> None:
        with self._lock:
            current = self._attempts.get(attempt.node) is attempt and not attempt.cancelled
            if current:
                del self._attempts[attempt.node]
        if not current:
            log.info("fencing %s: succeeded after it was cancelled; not reported", attempt.node)
            return
        try:
            self._on_fenced(attempt.node, result.method, result.device)
        except Exception:
            log.exception("fencing %s: on_fenced callback failed", attempt.node)
