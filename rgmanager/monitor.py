"""Status checks of locally running services: one timer heap, one pool.

What runs (``StatusChecker``, rgmanager's do_status): at each check every
resource runs the deepest of its status depths whose own interval has
elapsed, so deep checks run less often than cheap ones; intervals count
from the last successful start.

When it runs (``Monitor``): one heap of (due time, service) ordered by the
monotonic clock and one timer thread that sleeps until the earliest entry is
due, then hands that service to a bounded worker pool.  A service is always
in exactly one place -- waiting in the heap or running in the pool -- so its
checks never overlap and none is ever skipped: a check that finds every
worker busy waits in the pool's queue (late, not lost).  When a check ends,
the service goes back on the heap at the moment its next check is due,
which ``next_due`` (normally ``StatusChecker.next_due``) computes from the
per-resource intervals; so each check runs at its due time, not at the next
multiple of a polling period.  Without ``next_due`` the monitor falls back
to rgmanager's fixed ``status_poll_interval`` tick (fixed rate): then a
check whose due time falls just after a tick waits for the next one, so
with a 30 s interval and the default 10 s poll about half the gaps are
40 s -- the reason the manager should pass ``next_due``.
A service that was not checked after all (another operation held it) is
retried one second later (or at the poll interval if that is shorter).
Work per check is O(log N) for the heap; watch/unwatch are O(1) and are
cheap to repeat, since the manager re-applies them after every delivery.

Why not APScheduler: a job per service (the previous design) polled every
service every ``status_poll_interval`` whether due or not, and its
``max_instances`` rule *skipped* a run whenever the previous one was still
queued -- 11,700 skips a minute at 1,000 services.  One date job per due
time would fix the skipping, but the waiting/running bookkeeping that keeps
a service's checks from overlapping would still have to live here, and
APScheduler 3 schedules on the wall clock (timezone-aware datetimes: a clock
step moves every pending check) while the checker's intervals are
monotonic.  What is left for a scheduler to do -- keep due times ordered and
sleep until the first -- is a heap and one thread.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .agents.rules import ActionRule
from .tree.model import Node
from .tree.order import child_start_order
from .treeops import TreeOps

log = logging.getLogger(__name__)


@dataclass
class Failure:
    node: Node
    rc: int
    action: str
    depth: int


@dataclass
class _ServiceTimers:
    start: float  # last successful start: intervals count from here
    last: dict[tuple[str, int], float] = field(default_factory=dict)
    failures: dict[str, list[float]] = field(default_factory=dict)


def due_at(node: Node, timers: _ServiceTimers, action: ActionRule) -> float:
    """When ``action`` of ``node`` is next due (its interval after it last ran)."""
    return timers.last.get((node.path, action.depth), timers.start) + action.interval


def due_action(node: Node, timers: _ServiceTimers, now: float) -> ActionRule | None:
    """The deepest status action of ``node`` whose interval has elapsed.

    Written as ``now >= due_at(...)`` (not ``now - last >= interval``) so that
    a timer woken at exactly ``due_at`` finds the action due: both sides
    round the same float sum.
    """
    due = [a for a in node.status_actions() if now >= due_at(node, timers, a)]
    if not due:
        return None
    return max(due, key=lambda a: a.depth)


class StatusChecker:
    """Runs one status pass over a service tree (pure of scheduling)."""

    def __init__(self, ops: TreeOps, clock: Callable[[], float] = time.monotonic) -> None:
        self.ops = ops
        self.clock = clock
        self.timers: dict[str, _ServiceTimers] = {}

    def reset(self, service: str) -> None:
        """After a start: every interval counts from now (first check one interval later)."""
        self.timers[service] = _ServiceTimers(self.clock())

    def forget(self, service: str) -> None:
        self.timers.pop(service, None)

    def next_due(self, top: Node, skip: Collection[str] = ()) -> float | None:
        """When the next status action of ``top``'s tree falls due (this
        checker's clock), or None if nothing in it has a status interval.

        A service never reset here counts from now, as ``check`` would.
        Skipped parts (and everything below them) are left out, as in
        ``check``.
        """
        timers = self.timers.get(top.name)
        if timers is None:
            self.reset(top.name)
            timers = self.timers[top.name]
        soonest: float | None = None
        stack = [top]
        while stack:
            node = stack.pop()
            if node.path in skip:
                continue
            for a in node.status_actions():
                at = due_at(node, timers, a)
                if soonest is None or at < soonest:
                    soonest = at
            stack.extend(node.children)
        return soonest

    def check(self, top: Node, skip: set[str], force: bool = False) -> Failure | None:
        """One pass; ``force`` treats every depth as due (an explicit check)."""
        timers = self.timers.get(top.name)
        if timers is None:
            self.reset(top.name)
            timers = self.timers[top.name]
        return self._check(top, timers, skip, force)

    def _check(self, node: Node, timers: _ServiceTimers, skip: set[str], force: bool
               ) -> Failure | None:
        if node.path in skip:
            return None
        now = self.clock()
        action = due_action(node, timers, float("inf") if force else now)
        if action is not None:
            timers.last[(node.path, action.depth)] = now
            # a deeper check also covers the shallower ones
            for a in node.status_actions():
                if a.depth < action.depth:
                    timers.last[(node.path, a.depth)] = now
            rec = self.ops.run(node, action.name, action.depth)
            if rec.result is not None and not rec.result.ok:
                if self._tolerated(node, timers, now):
                    log.info("%s: status failure tolerated by __max_failures", node.name)
                else:
                    return Failure(node, rec.result.rc, action.name, action.depth)
        for child in child_start_order(node):
            failure = self._check(child, timers, skip, force)
            if failure is not None:
                return failure
        return None

    def _tolerated(self, node: Node, timers: _ServiceTimers, now: float) -> bool:
        if node.max_failures <= 0:
            return False
        times = [t for t in timers.failures.get(node.path, [])
                 if node.failure_expire_time <= 0 or now - t < node.failure_expire_time]
        times.append(now)
        timers.failures[node.path] = times
        return len(times) <= node.max_failures


#: A check that did not run (another operation held the service) is retried this soon.
RETRY_BUSY = 1.0


class Monitor:
    """One timer heap and one bounded worker pool for every service's checks.

    ``tick(service)`` runs one check pass (the manager's, which takes the
    service's lock and calls ``StatusChecker.check``).  ``next_due(service)``
    says when that service's next check is due, on ``clock``; without it the
    monitor ticks every ``poll_interval`` seconds.  ``workers`` bounds how
    many checks run at once (rgmanager's ``status_child_max``); a due check
    beyond that waits for a worker instead of being skipped.
    """

    def __init__(self, poll_interval: float, tick: Callable[[str], None], *,
                 next_due: Callable[[str], float | None] | None = None,
                 workers: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.poll_interval = max(1.0, poll_interval)
        self.tick = tick
        self.next_due = next_due
        self.clock = clock
        self.workers = max(1, workers)
        self._cv = threading.Condition()
        # (due, seq, service, tick?) -- an entry is live while _waiting[service][0] == seq
        self._heap: list[tuple[float, int, str, bool]] = []
        self._seq = itertools.count()
        self._waiting: dict[str, tuple[int, float]] = {}
        self._running: set[str] = set()
        self._watched: set[str] = set()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.ticks = 0  # tick calls made (for tests and benchmarks)

    # -- life ------------------------------------------------------------------
    def start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            self._stopped = False
            self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="rg-status")
            self._thread = threading.Thread(target=self._timer, name="rg-status-timer",
                                             daemon=True)
            self._thread.start()
            for service in self._watched - self._running - self._waiting.keys():
                self._push(service, self.clock(), self.next_due is None)  # after a shutdown

    def shutdown(self) -> None:
        """Stop scheduling; checks already running finish on their own."""
        with self._cv:
            self._stopped = True
            thread, pool = self._thread, self._pool
            self._thread = self._pool = None
            self._cv.notify_all()
        if thread is not None:
            thread.join()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- what is watched ----------------------------------------------------------
    def watch(self, service: str) -> None:
        """Start checking ``service`` (no-op if already watched).

        Its first entry only asks ``next_due`` (from a worker, never under
        this monitor's lock); the first check follows at the time it gives.
        """
        with self._cv:
            if service in self._watched:
                return
            self._watched.add(service)
            if service not in self._running:
                if self.next_due is None:
                    self._push(service, self.clock() + self.poll_interval, True)
                else:
                    self._push(service, self.clock(), False)

    def unwatch(self, service: str) -> None:
        """Stop checking ``service``; a check already running finishes."""
        with self._cv:
            self._watched.discard(service)
            self._waiting.pop(service, None)  # its heap entry goes stale

    def watched(self) -> list[str]:
        with self._cv:
            return sorted(self._watched)

    def due(self, service: str) -> float | None:
        """When ``service``'s next tick is scheduled (None: not waiting)."""
        with self._cv:
            entry = self._waiting.get(service)
            return None if entry is None else entry[1]

    # -- the timer thread and the workers -------------------------------------------
    def _push(self, service: str, due: float, tick: bool) -> None:
        """Queue ``service`` at ``due``; caller holds ``_cv``."""
        seq = next(self._seq)
        self._waiting[service] = (seq, due)
        heapq.heappush(self._heap, (due, seq, service, tick))
        if self._heap[0][1] == seq:
            self._cv.notify()  # a new earliest entry: the timer must wake sooner

    def _timer(self) -> None:
        with self._cv:
            while not self._stopped:
                heap = self._heap
                while heap and self._waiting.get(heap[0][2], (None,))[0] != heap[0][1]:
                    heapq.heappop(heap)  # unwatched or rescheduled since
                if not heap:
                    self._cv.wait()
                    continue
                wait = heap[0][0] - self.clock()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                due, _, service, tick = heapq.heappop(heap)
                del self._waiting[service]
                self._running.add(service)
                assert self._pool is not None
                future = self._pool.submit(self._run, service, due, tick)
                future.add_done_callback(functools.partial(self._done, service))

    def _done(self, service: str, future: Future[None]) -> None:
        """A turn dropped by ``shutdown`` before it ran is not running any more
        (so a later ``start`` schedules the service again)."""
        if future.cancelled():
            with self._cv:
                self._running.discard(service)

    def _run(self, service: str, due: float, tick: bool) -> None:
        """One service's turn on a worker: check (if ``tick``), then requeue."""
        if tick:
            try:
                self.tick(service)
            except Exception:
                log.exception("%s: status check failed to run", service)
        try:
            nxt = self._following(service, due, tick)
        except Exception:
            log.exception("%s: cannot compute the next status check", service)
            nxt = self.clock() + self.poll_interval
        with self._cv:
            self.ticks += tick
            self._running.discard(service)
            if service in self._watched and not self._stopped:
                self._push(service, nxt, True)

    def _following(self, service: str, due: float, ticked: bool) -> float:
        """When ``service`` runs next, after its turn that was due at ``due``."""
        now = self.clock()
        if self.next_due is None:
            # fixed rate from the previous due time; an overrun runs at once
            return max(due + self.poll_interval, now) if ticked else due
        at = self.next_due(service)
        if at is None:  # nothing with an interval (yet): look again later
            return now + self.poll_interval
        if ticked and at <= due:
            # the tick checked nothing (the service was busy): retry soon
            return now + min(RETRY_BUSY, self.poll_interval)
        return max(at, now)
