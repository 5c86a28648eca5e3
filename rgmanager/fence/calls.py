"""What to run to fence one node: cluster.conf ``<fence>`` turned into agent calls.

This is the pure half of fencing (no processes, no clock), so the rules that
decide what an agent receives can be read and tested on their own:

* a ``<clusternode>``'s ``<method>`` elements in document order, each with its
  ``<device>`` lines in order (every device of a method must succeed);
* a call's arguments are the ``<fencedevice>`` attributes (minus ``name`` and
  ``agent``) overlaid by the ``<device>`` line's (minus ``name``): the line
  wins, so one shared device can be pointed at each node's port;
* ``action`` defaults to ``reboot`` (the deprecated ``option`` spelling is
  honoured when ``action`` is absent), and ``nodename=<victim>`` is always
  added last, as cman's fenced did: fence-agents' library silently drops it
  unless the agent uses it, so it never hurts;
* no ``port``/``plug`` is invented: cman never did, and an agent that needs
  one fails with its own clear message rather than power-cycling a guessed
  outlet;
* ``delay`` is taken out of the agent's arguments and slept by us before the
  device (off/reboot only, as fence-agents' library does).  We sleep instead
  of the agent so the delay works with every agent, can be cancelled, and
  does not count against the agent's timeout; since the agent never sees
  ``delay`` it cannot sleep a second time.

The arguments travel on the agent's stdin, never in argv (``ps`` shows argv
to every user), and :func:`redacted` is the only form that may be logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..agentlib.redact import MASK
from ..config.model import ClusterConfig, FenceMethod, is_secret

log = logging.getLogger(__name__)

#: Actions before which a device's ``delay`` is slept (fence-agents' rule:
#: only the actions that take a node down race each other).
DELAYED_ACTIONS = frozenset({"off", "reboot"})

#: Attributes that name things in cluster.conf and are not agent options.
_NOT_ARGS = frozenset({"name", "agent"})


def redacted(args: Mapping[str, str]) -> dict[str, str]:
    """*args* with every secret value masked: the only form that is logged."""
    return {k: (MASK if is_secret(k) else v) for k, v in args.items()}


def describe(args: Mapping[str, str]) -> str:
    """``key=value`` pairs of :func:`redacted` on one line, for log messages."""
    return " ".join(f"{k}={v}" for k, v in redacted(args).items())


def scrub(text: str, args: Mapping[str, str]) -> str:
    """*text* (an agent's output) with the values of secret arguments masked.

    Agents may echo what they were given when they fail; their output is
    logged, so secrets are cut out of it first.
    """
    for key, value in args.items():
        if is_secret(key) and value:
            text = text.replace(value, MASK)
    return text


@dataclass(frozen=True)
class DeviceCall:
    """One run of one fence agent against one device, ready to execute."""

    victim: str
    method: str
    device: str
    agent: str
    args: Mapping[str, str] = field(repr=False)
    delay: float = 0.0
    #: Why this call cannot be made (unknown device...), or None.
    problem: str | None = None

    @property
    def action(self) -> str:
        return self.args.get("action", "reboot")

    def stdin(self) -> bytes:
        """The agent's standard input: one ``key=value`` line per argument."""
        return "".join(f"{k}={v}\n" for k, v in self.args.items()).encode()

    def __repr__(self) -> str:
        return (f"DeviceCall(victim={self.victim!r}, method={self.method!r}, "
                f"device={self.device!r}, agent={self.agent!r}, args={redacted(self.args)}, "
                f"delay={self.delay})")


@dataclass(frozen=True)
class MethodPlan:
    """A ``<method>`` and its device calls, in order."""

    name: str
    calls: tuple[DeviceCall, ...]


def _parse_delay(value: str | None, where: str) -> float:
    """Seconds of a ``delay`` attribute; a bad value is logged and means none.

    Refusing the device would leave the node unfenced (its services down for
    good); ignoring the delay only re-opens the two-node race, where both
    nodes shoot and the data stays safe.  Config validation should catch it.
    """
    if value is None or value.strip() == "":
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        log.warning("%s: delay %r is not a number of seconds; no delay", where, value)
        return 0.0
    return seconds


def device_call(config: ClusterConfig, victim: str, method: str, ref_name: str,
                ref_attrs: Mapping[str, str]) -> DeviceCall:
    """The call for one ``<device>`` line of *victim*'s *method*."""
    where = f"fencing {victim}: method {method} device {ref_name}"
    device = config.fencedevice(ref_name)
    if device is None:
        return DeviceCall(victim, method, ref_name, "", MappingProxyType({}),
                          problem=f"no <fencedevice name=\"{ref_name}\"> in cluster.conf")
    args: dict[str, str] = {k: v for k, v in device.attrs.items() if k not in _NOT_ARGS}
    args.update((k, v) for k, v in ref_attrs.items() if k not in _NOT_ARGS)
    delay = _parse_delay(args.pop("delay", None), where)
    action = args.pop("action", None) or args.get("option") or "reboot"
    args["action"] = action
    args.pop("nodename", None)
    args["nodename"] = victim
    if action not in DELAYED_ACTIONS:
        delay = 0.0
    return DeviceCall(victim, method, ref_name, device.agent, MappingProxyType(args), delay,
                      problem=None if device.agent else "its <fencedevice> has no agent")


def method_plan(config: ClusterConfig, victim: str, method: FenceMethod) -> MethodPlan:
    calls = tuple(device_call(config, victim, method.name, d.name, d.attrs)
                  for d in method.devices)
    return MethodPlan(method.name, calls)


def fence_plan(config: ClusterConfig, victim: str) -> tuple[MethodPlan, ...]:
    """*victim*'s methods in order; empty when it has none (or is not configured)."""
    node = config.node(victim)
    if node is None:
        return ()
    return tuple(method_plan(config, node.name, m) for m in node.fence)
