"""Fencing one node the way cman's fenced did: methods in order, rounds until done.

A round tries the node's ``<method>`` elements in document order.  A method
succeeds when every one of its devices succeeds, in order (two power
supplies: both outlets off); the first device that fails ends the method
and the next method is tried.  When every method failed, the round failed:
we pause and start another, for as long as it takes, because the lost
node's services must not be recovered until it is known to be off.

A node with no ``<fence>`` method cannot be fenced: one WARNING a minute
says so (and what the administrator can do) until the attempt is cancelled
or a reload gives the node a method.

Everything waits through *wait(seconds) -> cancelled*, so a cancel ends the
attempt at the next pause, delay or device boundary, and tests need no
clock tricks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config.model import ClusterConfig
from .agent import DeviceOutcome
from .calls import DeviceCall, MethodPlan, fence_plan

log = logging.getLogger(__name__)

#: Seconds between two rounds of failed methods.
DEFAULT_ROUND_PAUSE = 5.0

#: Seconds between two "cannot fence" warnings.
DEFAULT_WARN_INTERVAL = 60.0

RunCall = Callable[[DeviceCall], DeviceOutcome]
Wait = Callable[[float], bool]


@dataclass(frozen=True)
class FenceSuccess:
    """How a node was fenced: the method, its devices (comma-separated), when."""

    victim: str
    method: str
    device: str
    rounds: int
    duration: float


def cannot_fence_reason(victim: str, config: ClusterConfig) -> str:
    if config.node(victim) is None:
        why = "it is not a <clusternode> in cluster.conf"
    else:
        why = "it has no <fence> method in cluster.conf"
    return (f"cannot fence {victim}: {why}; its services stay recovering until an "
            f"administrator makes sure it is off and runs 'clusvcadm --fence-ack {victim}'")


def try_method(plan: MethodPlan, run: RunCall, *, position: int,
               total: int) -> DeviceOutcome:
    """Every device of *plan* in order; the first failure ends the method."""
    if not plan.calls:
        return DeviceOutcome(False, f"method {plan.name} has no <device>")
    for call in plan.calls:
        outcome = run(call)
        if outcome.cancelled:
            return outcome
        if not outcome.ok:
            nxt = "trying the next method" if position < total else "no method left this round"
            log.error("fencing %s: method %s, device %s failed: %s; %s", call.victim,
                      plan.name, call.device, outcome.reason, nxt)
            return outcome
        log.info("fencing %s: method %s, device %s: %s", call.victim, plan.name, call.device,
                 outcome.reason)
    return DeviceOutcome(True, f"method {plan.name}")


def fence_node(victim: str, *, config: Callable[[], ClusterConfig], run: RunCall, wait: Wait,
               round_pause: float = DEFAULT_ROUND_PAUSE,
               warn_interval: float = DEFAULT_WARN_INTERVAL) -> FenceSuccess | None:
    """Fence *victim*, round after round; None when cancelled.

    The configuration is read again at every round (*config()*), so a reload
    that fixes a device or adds a method is used by the next round.
    """
    start = time.monotonic()
    rounds = 0
    while True:
        current = config()
        plans = fence_plan(current, victim)
        if not plans:
            log.warning("%s", cannot_fence_reason(victim, current))
            if wait(warn_interval):
                return None
            continue
        rounds += 1
        for position, plan in enumerate(plans, 1):
            outcome = try_method(plan, run, position=position, total=len(plans))
            if outcome.cancelled:
                return None
            if outcome.ok:
                devices = ", ".join(c.device for c in plan.calls)
                took = time.monotonic() - start
                log.info("%s fenced by method %s (device %s) in round %d, %.1f s after "
                         "fencing started", victim, plan.name, devices, rounds, took)
                return FenceSuccess(victim, plan.name, devices, rounds, took)
            if wait(0):
                return None
        log.error("fencing %s: round %d failed (%d method%s); next round in %g s", victim,
                  rounds, len(plans), "" if len(plans) == 1 else "s", round_pause)
        if wait(round_pause):
            return None
