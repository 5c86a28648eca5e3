"""The dry run's event language: what a user writes after ``--event``.

``rg_test simulate --event node-down:node2 --event fail:web`` and the golden
scenario files (tests/scenarios) describe what happens to a simulated cluster
in this small language. This module only parses and checks it; the dry run
itself (:mod:`.dryrun`) turns each parsed :class:`DryRunEvent` into the
planner's events. Kept apart from the planner's own ``events`` module: those
are the messages the daemons exchange, these are a user's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..agents.rules import expand_time
from ..state import service_name
from .events import REQUEST_OPS, Op
from .model import PlanModel

#: The longest ``wait:`` event (ten years, as the configuration's time limit).
MAX_WAIT = 10 * 365 * 86400

#: The user requests a dry run can replay: every op the planner takes.
REQUEST_KINDS: tuple[str, ...] = tuple(str(op) for op in REQUEST_OPS)
#: Requests that name a target member after the service.
TARGETED = (str(Op.ENABLE), str(Op.RELOCATE), str(Op.MIGRATE))
NODE_KINDS = ("node-down", "node-up", "fenced")
INJECT_KINDS = ("start-fail", "stop-fail")
KINDS = NODE_KINDS + ("fail", "wait") + REQUEST_KINDS + INJECT_KINDS

EVENT_SYNTAX = (
    "node-down:N | node-up:N | fenced:N | fail:RES | wait:SECONDS | enable:S[:N|:-F] | disable:S | "
    "relocate:S[:N] | migrate:S[:N] | restart:S | stop:S | freeze:S | unfreeze:S | "
    "convalesce:S | start-fail:S:N | stop-fail:S:N  (requests take an optional @ORIGIN "
    "suffix)")


@dataclass(frozen=True)
class DryRunEvent:
    """One thing that happens to the simulated cluster, as the user wrote it."""

    text: str  # as given, shown in the output
    kind: str  # one of KINDS (a request's kind is its Op's value)
    service: str = ""  # service:NAME for requests and injections
    node: str | None = None  # a cluster member: node-down/up, request target, injection
    resource: str = ""  # fail: resource name, tree path or service
    seconds: float = 0.0  # wait
    follow_domain: bool = False  # enable -F
    origin: str | None = None  # request origin (default: first online node)


def _service(name: str, text: str) -> str:
    if not name:
        raise ValueError(f"bad event {text!r}: a service name is required")
    return service_name(name)


def parse_event(text: str) -> DryRunEvent:
    """Parse one ``--event`` argument; ValueError says what was expected."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"bad event {text!r}: expected one of {EVENT_SYNTAX}")
    if not rest:
        raise ValueError(f"bad event {text!r}: nothing after '{kind}:'")
    if kind in NODE_KINDS:
        if ":" in rest or "@" in rest:
            raise ValueError(f"bad event {text!r}: expected {kind}:NODE")
        return DryRunEvent(raw, kind, node=rest)
    if kind == "fail":
        return DryRunEvent(raw, kind, resource=rest)
    if kind == "wait":
        plain = rest.replace(".", "", 1)
        seconds = float(rest) if plain.isascii() and plain.isdigit() and len(plain) < 12 \
            else expand_time(rest)
        if not 0 < seconds <= MAX_WAIT:
            raise ValueError(f"bad event {text!r}: expected wait:SECONDS (e.g. 30, 5m; at "
                             "most ten years)")
        return DryRunEvent(raw, kind, seconds=float(seconds))
    origin = None
    if kind in REQUEST_KINDS and "@" in rest:
        rest, _, origin = rest.rpartition("@")
        if not origin:
            raise ValueError(f"bad event {text!r}: empty origin after '@'")
    rest = rest.removeprefix("service:")
    parts = rest.split(":")
    service = _service(parts[0], text)
    args = parts[1:]
    if kind in INJECT_KINDS:
        if len(args) != 1 or not args[0]:
            raise ValueError(f"bad event {text!r}: expected {kind}:SERVICE:NODE")
        return DryRunEvent(raw, kind, service=service, node=args[0])
    if kind == "enable" and args == ["-F"]:
        return DryRunEvent(raw, kind, service=service, follow_domain=True, origin=origin)
    if kind in TARGETED and len(args) <= 1:
        if args and not args[0]:
            raise ValueError(f"bad event {text!r}: empty node name")
        return DryRunEvent(raw, kind, service=service, node=args[0] if args else None,
                           origin=origin)
    if args:
        raise ValueError(f"bad event {text!r}: {kind} takes only a service "
                         f"({kind}:SERVICE)")
    return DryRunEvent(raw, kind, service=service, origin=origin)


def resolve_resource(model: PlanModel, name: str) -> tuple[str, str]:
    """``fail:RES`` -> (service, tree path); the path is "" for the whole service.

    RES is a service (``web``/``service:web``), a tree path
    (``service:web/ip:10.0.0.1``) or a resource name (``ip:10.0.0.1``) used in
    exactly one place.
    """
    svc = service_name(name)
    if svc in model.services:
        return svc, ""
    for sname, spec in model.services.items():
        if name in spec.parts:
            return sname, name
    hits = [(sname, p.path) for sname, spec in model.services.items()
            for p in spec.parts.values() if p.name == name]
    if not hits:
        raise ValueError(f"fail:{name}: no service or resource called {name!r}")
    if len(hits) > 1:
        raise ValueError(f"fail:{name}: {name} is used in several places; give a tree path: "
                         + ", ".join(p for _, p in sorted(hits)))
    return hits[0]


def check_events(model: PlanModel, events: Sequence[DryRunEvent]) -> None:
    """Reject events that cannot be routed before anything is simulated."""
    for ev in events:
        if ev.kind == "fail":
            resolve_resource(model, ev.resource)
        if ev.kind in NODE_KINDS + INJECT_KINDS and ev.node not in model.node_ids:
            raise ValueError(f"{ev.text}: {ev.node} is not a configured node")
        if ev.kind in INJECT_KINDS and ev.service not in model.services:
            raise ValueError(f"{ev.text}: no service {ev.service}")


__all__ = ["EVENT_SYNTAX", "KINDS", "MAX_WAIT", "REQUEST_KINDS", "DryRunEvent", "check_events",
           "parse_event", "resolve_resource"]
