"""Placement and recovery decisions as one pure function (see core.plan)."""

from .core import Plan, RepetitionGuard, Settled, claimed_table, plan, settle
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
from .model import PartSpec, PlanModel, ServiceSpec

__all__ = [
    "REQUEST_OPS", "Action", "Event", "NodesChanged", "Op", "PartSpec", "PartsDone", "Plan",
    "PlanModel", "RepetitionGuard", "Reply", "Request", "RestartParts", "ServiceSpec",
    "Settled", "Start", "StartDone", "StartParts", "StatusFailed", "Stop", "StopDone",
    "StopParts", "claimed_table", "describe", "from_payload", "plan", "settle", "to_payload",
]
