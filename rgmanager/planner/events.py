"""Events the planner consumes and actions it asks for.

Events travel as JSON payloads through the cluster's ordered channel; each
carries the sender's clock so every node computes the same plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Op(StrEnum):
    """A user request (clusvcadm's service commands).

    A ``StrEnum`` so that a request travelling as JSON, and code that still
    compares ``op`` with a plain string, see the same value.
    """

    ENABLE = "enable"
    DISABLE = "disable"
    RELOCATE = "relocate"
    RESTART = "restart"
    STOP = "stop"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    CONVALESCE = "convalesce"
    MIGRATE = "migrate"


#: Every request op, in declaration order (for validating what a client sends).
REQUEST_OPS: tuple[Op, ...] = tuple(Op)


@dataclass(frozen=True)
class NodesChanged:
    """Membership changed (also the first delivery: the local node joined)."""

    time: float
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    kind: str = "nodes"


@dataclass(frozen=True)
class Request:
    """A user request (clusvcadm). ``op`` is an :class:`Op` value; typed
    ``str`` because it arrives as one (JSON, the simulator's event text) and
    the planner answers an unknown op with EINVAL rather than failing."""

    time: float
    op: str
    service: str
    origin: str
    id: str = ""
    node: str | None = None
    follow_domain: bool = False
    deadline: float = 0.0  # the requester gives up then (0: never); later it is not done
    kind: str = "request"


@dataclass(frozen=True)
class StartDone:
    time: float
    service: str
    node: str
    ok: bool
    kind: str = "start_done"


@dataclass(frozen=True)
class StopDone:
    time: float
    service: str
    node: str
    ok: bool
    kind: str = "stop_done"


@dataclass(frozen=True)
class StatusFailed:
    time: float
    service: str
    node: str
    part: str  # tree path of the failing resource use ("" or the service = whole service)
    rc: int = 1
    detail: str = ""
    kind: str = "status_failed"


@dataclass(frozen=True)
class PartsDone:
    time: float
    service: str
    node: str
    op: str  # restart | stop | start
    parts: tuple[str, ...]
    ok: bool
    kind: str = "parts_done"


@dataclass(frozen=True)
class NodeFenced:
    """``node`` is known to be off: a fence agent switched it off (``by``
    ``"agent:<method>/<device>"``) or an administrator said so (``"admin"``,
    ``clusvcadm --fence-ack``). Only now may its services run elsewhere
    (see :class:`rgmanager.state.Table` ``awaiting_fence``)."""

    time: float
    node: str
    by: str = "admin"
    kind: str = "node_fenced"


#: ``by`` of a :class:`NodeFenced` an administrator's acknowledgement caused.
FENCED_BY_ADMIN = "admin"


def fenced_by_agent(method: str, device: str) -> str:
    """``by`` of a :class:`NodeFenced` a fence agent caused."""
    return f"agent:{method}/{device}"


Event = NodesChanged | Request | StartDone | StopDone | StatusFailed | PartsDone | NodeFenced
_KINDS: dict[str, type] = {c.kind: c for c in (
    NodesChanged, Request, StartDone, StopDone, StatusFailed, PartsDone, NodeFenced)}


def to_payload(event: Event) -> dict[str, Any]:
    return asdict(event)


def from_payload(payload: dict[str, Any]) -> Event:
    data = dict(payload)
    cls = _KINDS[data["kind"]]
    for key in ("joined", "left", "parts"):
        if key in data:
            data[key] = tuple(data[key])
    event: Event = cls(**data)
    return event


# -- actions ------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    service: str
    node: str
    recover: bool = False


@dataclass(frozen=True)
class Stop:
    """``emergency``: a stop on quorum loss. The table already says stopped,
    so its completion is not reported (rgmanager's emergency stop did not
    touch the state either)."""

    service: str
    node: str
    why: str = ""
    emergency: bool = False


@dataclass(frozen=True)
class RestartParts:
    service: str
    node: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class StopParts:
    service: str
    node: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class StartParts:
    service: str
    node: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    request: str
    origin: str
    code: int
    text: str
    owner: str | None = None


Action = Start | Stop | RestartParts | StopParts | StartParts | Reply


def describe(action: Action) -> str:
    """One readable line per action, for simulate output and golden files."""
    if isinstance(action, Start):
        return f"start {action.service} on {action.node}" + (" (recover)" if action.recover
                                                             else "")
    if isinstance(action, Stop):
        return f"stop {action.service} on {action.node}" + (f" ({action.why})" if action.why
                                                            else "")
    if isinstance(action, RestartParts):
        return f"restart {', '.join(action.parts)} of {action.service} on {action.node}"
    if isinstance(action, StopParts):
        return f"stop non-critical {', '.join(action.parts)} of {action.service} on " \
               f"{action.node}"
    if isinstance(action, StartParts):
        return f"start {', '.join(action.parts)} of {action.service} on {action.node}"
    return f"reply to {action.origin}: {action.code} {action.text}" + (
        f" (owner {action.owner})" if action.owner else "")
