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
    REQUEST_OPS,
    Action,
    Event,
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
    from_payload,
    to_payload,
)

if TYPE_CHECKING:
    from .core import Plan, RepetitionGuard, Settled, claimed_table, plan, settle
    from .model import PartSpec, PlanModel, ServiceSpec

_LAZY = {
    "Plan": ".core", "RepetitionGuard": ".core", "Settled": ".core",
    "claimed_table": ".core", "plan": ".core", "settle": ".core",
    "PartSpec": ".model", "PlanModel": ".model", "ServiceSpec": ".model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "REQUEST_OPS", "Action", "Event", "NodesChanged", "Op", "PartSpec", "PartsDone", "Plan",
    "PlanModel", "RepetitionGuard", "Reply", "Request", "RestartParts", "ServiceSpec",
    "Settled", "Start", "StartDone", "StartParts", "StatusFailed", "Stop", "StopDone",
    "StopParts", "claimed_table", "describe", "from_payload", "plan", "settle", "to_payload",
]
