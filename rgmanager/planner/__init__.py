"""Placement and recovery decisions as one pure function (see core.plan).

The vocabulary (:mod:`.events`: events, actions, :class:`Op`) is imported at
once; the planner itself (:mod:`.core`, :mod:`.model`, which pull in the
configuration and tree code) only when first used, so a CLI that needs only
``Op`` (clusvcadm) does not pay for loading the planner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .events import (
    FENCED_BY_ADMIN,
    REQUEST_OPS,
    Action,
    Event,
    NodeFenced,
    NodesChanged,
    Op,
    PartsDone,
    Reply,
    Request,
    RestartParts,
    Start,
    StartDone,
    StartParts,
    StatusFailed,
    Stop,
    StopDone,
    StopParts,
    describe,
    fenced_by_agent,
    from_payload,
    to_payload,
)

if TYPE_CHECKING:
    from .core import Plan, RepetitionGuard, Settled, claimed_table, plan, settle
    from .fencing import awaiting_fence, coordinator, fence_wait_node
    from .model import PartSpec, PlanModel, ServiceSpec

_LAZY = {
    "Plan": ".core", "RepetitionGuard": ".core", "Settled": ".core",
    "claimed_table": ".core", "plan": ".core", "settle": ".core",
    "PartSpec": ".model", "PlanModel": ".model", "ServiceSpec": ".model",
    "awaiting_fence": ".fencing", "coordinator": ".fencing", "fence_wait_node": ".fencing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FENCED_BY_ADMIN", "REQUEST_OPS", "Action", "Event", "NodeFenced", "NodesChanged", "Op",
    "PartSpec", "PartsDone", "Plan",
    "PlanModel", "RepetitionGuard", "Reply", "Request", "RestartParts", "ServiceSpec",
    "Settled", "Start", "StartDone", "StartParts", "StatusFailed", "Stop", "StopDone",
    "StopParts", "awaiting_fence", "claimed_table", "coordinator", "describe",
    "fence_wait_node", "fenced_by_agent", "from_payload", "plan", "settle", "to_payload",
]
