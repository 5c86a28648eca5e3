"""Status checks of locally running services, scheduled with APScheduler.

One job per running service ticks every ``status_poll_interval``; at each
tick every resource runs the deepest of its status depths whose own
interval is due (rgmanager's do_status), so deep checks run less often than
cheap ones. A tick is skipped while another operation holds the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler

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


def due_action(node: Node, timers: _ServiceTimers, now: float) -> ActionRule | None:
    """The deepest status action of ``node`` whose interval has elapsed."""
    due = [a for a in node.status_actions()
           if now - timers.last.get((node.path, a.depth), timers.start) >= a.interval]
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


class Monitor:
    """The APScheduler side: one interval job per locally running service."""

    def __init__(self, poll_interval: float, tick: Callable[[str], None]) -> None:
        self.poll_interval = max(1.0, poll_interval)
        self.tick = tick
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True,
                                                           "max_instances": 1,
                                                           "misfire_grace_time": None})
        self.lock = threading.Lock()

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def watch(self, service: str) -> None:
        job_id = f"status:{service}"
        with self.lock:
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(self.tick, "interval", args=[service], id=job_id,
                                       seconds=self.poll_interval, replace_existing=True)

    def unwatch(self, service: str) -> None:
        with self.lock:
            job = self.scheduler.get_job(f"status:{service}")
            if job is not None:
                job.remove()

    def watched(self) -> list[str]:
        return sorted(j.id.removeprefix("status:") for j in self.scheduler.get_jobs())
