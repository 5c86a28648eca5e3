"""Fencing: making sure a lost node is off before its services run elsewhere.

* :mod:`.coordinator` - which member fences (lowest node id, no election);
* :mod:`.calls` - cluster.conf ``<fence>`` turned into agent calls (pure);
* :mod:`.agent` - one agent run through the executor, one line of outcome;
* :mod:`.rounds` - methods in order, rounds until one succeeds;
* :mod:`.fencer` - the threads the manager drives on the coordinator.

docs/fencing.md explains the behaviour to administrators.
"""

from .agent import DEFAULT_AGENT_TIMEOUT, DeviceOutcome, resolve_agent, run_call
from .calls import DeviceCall, MethodPlan, describe, fence_plan, is_secret, redacted
from .coordinator import coordinator
from .fencer import Fencer, FenceStart
from .rounds import DEFAULT_ROUND_PAUSE, DEFAULT_WARN_INTERVAL, FenceSuccess, fence_node

__all__ = [
    "DEFAULT_AGENT_TIMEOUT",
    "DEFAULT_ROUND_PAUSE",
    "DEFAULT_WARN_INTERVAL",
    "DeviceCall",
    "DeviceOutcome",
    "FenceStart",
    "FenceSuccess",
    "Fencer",
    "MethodPlan",
    "coordinator",
    "describe",
    "fence_node",
    "fence_plan",
    "is_secret",
    "redacted",
    "resolve_agent",
    "run_call",
]
