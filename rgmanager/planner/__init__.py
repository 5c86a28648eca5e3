"""Placement and recovery decisions as one pure function (see core.plan)."""

from .core import Plan, claimed_table, plan
from .events import (
    Action,
    Event,
    NodesChanged,
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
    "Action", "Event", "NodesChanged", "PartSpec", "PartsDone", "Plan", "PlanModel", "Reply",
    "Request", "RestartParts", "ServiceSpec", "Start", "StartDone", "StartParts",
    "StatusFailed", "Stop", "StopDone", "StopParts", "claimed_table", "describe",
    "from_payload", "plan",
    "to_payload",
]
