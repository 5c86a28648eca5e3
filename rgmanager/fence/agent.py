"""Run one fence-agent call and say, in one line, what happened.

Agents run through :func:`rgmanager.executor.run_program`: an argv list (the
agent alone; its arguments go on stdin), the executor's clean environment,
their own process group, and a timeout after which the whole group is
killed.  The timeout is the Fencer's ``agent_timeout`` (60 s by default: a
fence-agents power agent logs in, switches off and waits for the off state
well within it); it is not a cluster.conf attribute, because any attribute
of a device is an agent option and an unknown one makes agents complain.

Nothing here logs the agent's stdin: only :func:`calls.describe` (secrets
masked) and the agent's output with secret values cut out.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..executor import ProgramResult, run_program
from .calls import DeviceCall, describe, scrub

log = logging.getLogger(__name__)

#: Where agent names are looked up after the daemon's own ``PATH``
#: (fence-agents installs there, and daemons often run with a short PATH).
AGENT_DIRS = ("/usr/sbin",)

#: Seconds an agent may run before its process group is killed.
DEFAULT_AGENT_TIMEOUT = 60.0

#: Most characters of an agent's output quoted in a failure message.
_QUOTE = 300


class Runner(Protocol):
    """The shape of :func:`rgmanager.executor.run_program` (injectable for tests)."""

    def __call__(self, argv: Sequence[str], *, stdin: bytes | None = ...,
                 env: Mapping[str, str] | None = ..., timeout: float) -> ProgramResult: ...


@dataclass(frozen=True)
class DeviceOutcome:
    """What one device call came to; ``reason`` is safe to log."""

    ok: bool
    reason: str
    cancelled: bool = False


def resolve_agent(agent: str, search_path: str | None = None) -> str:
    """The program to run for a ``<fencedevice agent=...>``.

    An absolute path is used as it is; a bare name is looked up on
    *search_path* (default: the daemon's ``PATH``) and then in
    :data:`AGENT_DIRS`.  A relative path with a slash is refused: what it
    would run depends on the daemon's working directory.  Raises
    ``LookupError`` with a message fit for the log.
    """
    if not agent:
        raise LookupError("no agent configured")
    if "/" in agent:
        if not os.path.isabs(agent):
            raise LookupError(f"agent {agent!r} is a relative path (use a name or an "
                              "absolute path)")
        if not os.path.isfile(agent):
            raise LookupError(f"agent {agent} does not exist")
        if not os.access(agent, os.X_OK):
            raise LookupError(f"agent {agent} is not executable")
        return agent
    path = os.environ.get("PATH", "") if search_path is None else search_path
    dirs = [d for d in path.split(os.pathsep) if d] + list(AGENT_DIRS)
    found = shutil.which(agent, path=os.pathsep.join(dirs))
    if found is None:
        raise LookupError(f"agent {agent} not found on PATH or in {', '.join(AGENT_DIRS)}")
    return os.path.abspath(found)


def _quote(text: str) -> str:
    """The tail of an agent's output on one line (errors come last)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= _QUOTE else "..." + tail[-_QUOTE:]


def _failure(result: ProgramResult, timeout: float, args: Mapping[str, str]) -> str:
    if result.timed_out:
        why = f"timed out after {timeout:g} s (process group killed)"
    elif result.returncode is None:
        why = "killed by a signal" if not result.stderr.startswith("cannot run") else ""
    else:
        why = f"exit {result.returncode}"
    said = _quote(scrub(result.stderr + "\n" + result.stdout, args))
    return f"{why}: {said}" if why and said else (why or said or "failed")


def run_call(call: DeviceCall, *, runner: Runner = run_program,
             timeout: float = DEFAULT_AGENT_TIMEOUT,
             cancelled: Callable[[float], bool] | None = None,
             search_path: str | None = None) -> DeviceOutcome:
    """Run *call*: wait its ``delay`` (cancellable), then the agent.

    *cancelled(seconds)* waits up to that long and returns True if the
    attempt was cancelled meanwhile (a ``threading.Event.wait`` fits).  Never
    raises: a configuration problem, a missing agent or a runner failure is a
    failed device with a reason.
    """
    wait = cancelled if cancelled is not None else threading.Event().wait
    label = f"fencing {call.victim}: method {call.method}, device {call.device}"
    if call.problem is not None:
        return DeviceOutcome(False, f"cannot use device {call.device}: {call.problem}")
    try:
        program = resolve_agent(call.agent, search_path)
    except LookupError as err:
        return DeviceOutcome(False, str(err))
    if call.delay > 0:
        log.info("%s: waiting the device's delay of %g s before %s", label, call.delay,
                 call.action)
        if wait(call.delay):
            return DeviceOutcome(False, "cancelled during the delay", cancelled=True)
    if wait(0):
        return DeviceOutcome(False, "cancelled", cancelled=True)
    log.info("%s: running %s with %s", label, program, describe(call.args))
    try:
        result = runner([program], stdin=call.stdin(), timeout=timeout)
    except Exception as err:  # a runner bug must not kill the fencing thread
        # No traceback: its message could quote the arguments.
        return DeviceOutcome(False, f"could not run {program}: "
                             f"{scrub(str(err), call.args)}")
    if result.ok:
        return DeviceOutcome(True, f"{call.agent} succeeded in {result.elapsed:.1f} s")
    return DeviceOutcome(False, f"{call.agent} {_failure(result, timeout, call.args)}")
