"""Run one resource-agent action as a process and report what happened.

This is the only place where rgmanager-py starts agents, so everything that
makes agent execution safe lives here:

* argv is always a list (``[agent, action, *extra]``); no shell ever sees a
  resource attribute, so values full of shell metacharacters are harmless.
* The environment is built from scratch (docs/rgmanager.md §10, docs/decisions.md
  10): a sane ``PATH`` and the OCF variables, nothing inherited from the
  daemon, so secrets or odd settings in our own environment never leak into
  agents and agents behave the same under the daemon and under ``rg_test``.
* Each agent runs in its own session / process group, so a timeout can take
  down everything the agent started (decision 13: TERM the group, then KILL).
* Output is read through one pipe with ``select`` and bounded in memory; an
  init script that daemonizes without redirecting its output cannot make us
  wait for EOF forever.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Where agents look for programs: the system directories come first, so a
#: program name an agent runs (``mount``, ``python3`` of a ``#!/usr/bin/env``
#: line) is the system's, never one from a (possibly user-writable) virtualenv.
#: The directory of the running Python is appended (see :func:`build_env`).
SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Seconds between SIGTERM and SIGKILL when a timeout is enforced.
KILL_GRACE = 5.0

#: Seconds we keep reading output after the agent itself exited.  Processes
#: left behind in its group (a daemon started by an init script) may still
#: hold the pipe open; we do not wait for them beyond this window.
DRAIN_WINDOW = 0.5

#: Most output kept per action (the tail is kept: errors come last).
MAX_OUTPUT = 64 * 1024

#: Upper bound on one wait when we cannot be woken by the process exiting.
_TICK = 0.05

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class OcfRc(enum.IntEnum):
    """OCF resource-agent exit codes."""

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7


_RC_TEXT: dict[int, str] = {
    OcfRc.SUCCESS: "success",
    OcfRc.ERR_GENERIC: "generic error",
    OcfRc.ERR_ARGS: "invalid argument(s)",
    OcfRc.ERR_UNIMPLEMENTED: "function not implemented",
    OcfRc.ERR_PERM: "insufficient privileges",
    OcfRc.ERR_INSTALLED: "program not installed",
    OcfRc.ERR_CONFIGURED: "program not configured",
    OcfRc.NOT_RUNNING: "not running",
}


def describe_rc(rc: int) -> str:
    """Text for an exit code, as used in ``OP on T "NAME" returned N (TEXT)`` logs.

    Negative codes follow :mod:`subprocess`: the process was killed by that
    signal.  (rgmanager printed ``unspecified`` for 7 by an off-by-one; we
    print what 7 means.)
    """
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return _RC_TEXT.get(rc, f"unknown ({rc})")


def lsb_to_ocf(action: str, rc: int) -> int:
    """Map an LSB init-script exit code to the OCF code with the same meaning.

    LSB ``status`` uses its own table (1/2: dead but pid/lock file left, 3: not
    running, 4: unknown), while for the other actions LSB 1..7 mean what OCF
    1..7 mean.  Anything else is a generic error.  Negative codes (killed by
    a signal) are generic errors too.
    """
    if action == "status":
        if rc == 0:
            return OcfRc.SUCCESS
        if rc == 3:
            return OcfRc.NOT_RUNNING
        return OcfRc.ERR_GENERIC
    if 0 <= rc <= 7:
        return rc
    return OcfRc.ERR_GENERIC


@dataclass(frozen=True)
class ActionRequest:
    """Everything needed to run one action; immutable so it can be logged and retried."""

    agent: str
    action: str
    params: Mapping[str, str]
    resource_type: str
    instance: str
    ocf_root: str
    check_level: int = 0
    timeout: float | None = None
    enforce_timeout: bool = True
    lsb: bool = False
    extra_args: Sequence[str] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionResult:
    """Outcome of one action.

    ``rc`` is what callers decide on (OCF meaning, 1 on timeout or signal);
    ``raw_rc`` is kept for logs and for callers with their own tables
    (migrate: 150 means "still on the source").
    """

    rc: int
    raw_rc: int
    output: str
    timed_out: bool
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == OcfRc.SUCCESS


def _valid_env_item(kind: str, name: str, value: str) -> bool:
    """Reject names the kernel/shell cannot carry instead of failing the whole exec."""
    if not _ENV_NAME.match(name):
        log.warning("skipping %s %r: not a valid environment variable name", kind, name)
        return False
    if "\0" in value:
        log.warning("skipping %s %r: value contains a NUL byte", kind, name)
        return False
    return True


def base_env() -> dict[str, str]:
    """``PATH`` (system directories first, the virtualenv's ``bin`` last),
    ``LANG`` and ``RGMANAGER_PYTHON``: what every agent run starts from,
    meta-data runs included."""
    py_dir = os.path.dirname(os.path.abspath(sys.executable))
    path = SANE_PATH if py_dir in SANE_PATH.split(":") else f"{SANE_PATH}:{py_dir}"
    env: dict[str, str] = {"PATH": path, "LANG": "C"}
    if sys.executable:
        # Our agents' launchers run this interpreter (it has the project's
        # packages, e.g. pyroute2), not whichever python3 PATH finds first.
        env["RGMANAGER_PYTHON"] = os.path.abspath(sys.executable)
    return env


def build_env(req: ActionRequest) -> dict[str, str]:
    """The complete environment of the agent (pure apart from reading ``HA_RSCTMP``).

    Nothing of our own environment is inherited except ``HA_RSCTMP`` (where
    agents keep state markers).  ``PATH`` is :data:`SANE_PATH` first, then the
    directory of :data:`sys.executable` (the virtualenv's ``bin``) last: system
    programs win over anything installed in the virtualenv.  Our agents'
    launchers run ``RGMANAGER_PYTHON`` (this interpreter, with the project's
    packages) instead of the first ``python3`` on ``PATH``.
    """
    env = base_env()
    rsctmp = os.environ.get("HA_RSCTMP")
    if rsctmp is not None:
        env["HA_RSCTMP"] = rsctmp
    for name, value in req.params.items():
        if _valid_env_item("parameter", name, str(value)):
            env[f"OCF_RESKEY_{name}"] = str(value)
    env.update(
        {
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "0",
            "OCF_ROOT": req.ocf_root,
            "OCF_RESOURCE_INSTANCE": req.instance,
            "OCF_RESOURCE_TYPE": req.resource_type,
            "OCF_CHECK_LEVEL": str(req.check_level),
        }
    )
    for name, value in req.extra_env.items():
        if _valid_env_item("environment variable", name, str(value)):
            env[name] = str(value)
    return env


class _Output:
    """Bounded buffer that keeps the tail of what the agent wrote."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._dropped = 0

    def add(self, data: bytes) -> None:
        self._buf += data
        # Trim only when well over the limit so trimming stays amortised O(n).
        if len(self._buf) > 2 * self._limit:
            cut = len(self._buf) - self._limit
            del self._buf[:cut]
            self._dropped += cut

    def text(self) -> str:
        if len(self._buf) > self._limit:
            cut = len(self._buf) - self._limit
            del self._buf[:cut]
            self._dropped += cut
        body = self._buf.decode("utf-8", errors="replace")
        if self._dropped:
            return f"[... {self._dropped} bytes of output truncated ...]\n{body}"
        return body


def _pidfd_open(pid: int) -> int | None:
    """A descriptor that becomes readable when *pid* exits (Linux >= 5.3), if available."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
        return fd
    except OSError:
        return None


def _exited(pid: int) -> bool:
    """True once *pid* has exited, *without reaping it*.

    Leaving the group leader a zombie until we are done keeps its pid (and so
    the process-group id) reserved: ``killpg`` can never hit an unrelated
    group that reused the number.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _group_alive(pgid: int, leader: int) -> bool:
    """Whether any non-zombie process other than the (exited) leader is in *pgid*."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    if not entries:  # no /proc: ask the kernel (zombies count as alive here)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in entries:
        if not entry.isdigit() or int(entry) == leader:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) >= 3 and rest[0] not in (b"Z", b"X") and int(rest[2]) == pgid:
            return True
    return False


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _drain_forever(fd: int, label: str) -> None:
    """Read and discard until EOF, in a daemon thread.

    Used when processes the agent left behind (a daemon started by an init
    script) still hold the output pipe: closing our end would kill them with
    SIGPIPE on their next write, and waiting for EOF would block the action.
    """
    discarded = 0
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            discarded += len(data)
    finally:
        os.close(fd)
        log.debug(
            "%s: output pipe closed by leftover processes (%d bytes discarded)", label, discarded
        )


def _not_installed(req: ActionRequest, why: str, start: float) -> ActionResult:
    msg = f"{req.action} on {req.instance}: cannot run agent {req.agent}: {why}"
    log.error("%s", msg)
    return ActionResult(
        rc=OcfRc.ERR_INSTALLED,
        raw_rc=OcfRc.ERR_INSTALLED,
        output=msg,
        timed_out=False,
        duration=time.monotonic() - start,
    )


def run_action(req: ActionRequest, *, kill_grace: float = KILL_GRACE) -> ActionResult:
    """Run ``req.agent req.action [extra_args]`` and wait for its result.

    Never raises for agent trouble: a missing or non-executable agent is
    ``ERR_INSTALLED`` (5), a timeout or death by signal is ``ERR_GENERIC`` (1),
    so callers have one code path.  With an enforced timeout the agent's whole
    process group gets SIGTERM, then SIGKILL after *kill_grace* seconds.
    """
    start = time.monotonic()
    agent = os.path.abspath(req.agent)  # never let PATH pick the program
    label = f"{req.action} on {req.instance}"
    if not os.path.isfile(agent):
        return _not_installed(req, "no such file", start)
    if not os.access(agent, os.X_OK):
        return _not_installed(req, "not executable", start)

    argv = [agent, req.action, *req.extra_args]
    env = build_env(req)
    log.debug("%s: exec %s (parameters: %s)", label, argv, ", ".join(sorted(req.params)) or "-")

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT,
            env=env,
            close_fds=True,
            start_new_session=True,  # own process group: killpg reaches its children
            restore_signals=True,
            cwd="/",
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR):
            return _not_installed(req, exc.strerror or str(exc), start)
        return _not_installed(req, str(exc), start)
    os.close(write_fd)

    pid = proc.pid
    pidfd = _pidfd_open(pid)
    timeout = req.timeout if req.timeout and req.timeout > 0 else None
    deadline = start + timeout if timeout is not None else None
    output = _Output()
    eof = False
    exited = False
    settle_from = 0.0  # when the last process we waited for went away
    timed_out = False
    warned = False
    term_sent: float | None = None
    escalating = False  # between SIGTERM and "group gone or SIGKILLed"

    try:
        while True:
            now = time.monotonic()
            if not exited and _exited(pid):
                exited = True
                settle_from = max(settle_from, now)

            if deadline is not None and now >= deadline and not exited and term_sent is None:
                if req.enforce_timeout:
                    timed_out = True
                    log.error(
                        "%s timed out after %g seconds; sending SIGTERM to its process group",
                        label,
                        timeout,
                    )
                    _killpg(pid, signal.SIGTERM)
                    term_sent = now
                    escalating = True
                elif not warned:
                    warned = True
                    log.warning("%s exceeded its timeout of %g s (not enforced)", label, timeout)

            if escalating and term_sent is not None:
                if exited and not _group_alive(pid, pid):
                    escalating = False  # everything obeyed SIGTERM
                elif now - term_sent >= kill_grace:
                    log.error(
                        "%s still running %g seconds after SIGTERM; sending SIGKILL "
                        "to its process group",
                        label,
                        kill_grace,
                    )
                    _killpg(pid, signal.SIGKILL)
                    escalating = False
                    settle_from = max(settle_from, now)

            if exited and not escalating:
                # Done once the pipe is closed, or after a short drain window
                # if leftovers (a daemon) still hold it open.
                if eof or now - settle_from >= DRAIN_WINDOW:
                    break

            # Sleep until something needs our attention.
            waits = [_TICK if pidfd is None and not exited else 3600.0]
            if deadline is not None and not exited and term_sent is None and not warned:
                waits.append(deadline - now)
            if escalating and term_sent is not None:
                waits.append(min(_TICK, term_sent + kill_grace - now))
            if exited and not escalating:
                waits.append(settle_from + DRAIN_WINDOW - now)
            wait = max(0.0, min(waits))

            fds = [] if eof else [read_fd]
            if pidfd is not None and not exited:
                fds.append(pidfd)
            if not fds:
                time.sleep(wait)
                continue
            ready, _, _ = select.select(fds, [], [], wait)
            if read_fd in ready:
                data = os.read(read_fd, 65536)
                if data:
                    output.add(data)
                else:
                    eof = True
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if not exited:
            # Only reachable through an exception (e.g. KeyboardInterrupt):
            # do not leave a runaway agent behind.
            _killpg(pid, signal.SIGKILL)
        raw_rc = proc.wait()
        if eof:
            os.close(read_fd)
        else:
            threading.Thread(
                target=_drain_forever, args=(read_fd, label), name="executor-drain", daemon=True
            ).start()

    duration = time.monotonic() - start
    if timed_out or raw_rc < 0:
        rc = int(OcfRc.ERR_GENERIC)
    elif req.lsb:
        rc = lsb_to_ocf(req.action, raw_rc)
    else:
        rc = raw_rc
    text = output.text()
    log.debug(
        "%s returned %d (%s)%s in %.3f s; output:\n%s",
        label,
        rc,
        describe_rc(rc),
        f" [raw {raw_rc}]" if raw_rc != rc else "",
        duration,
        text.rstrip() or "(none)",
    )
    return ActionResult(rc=rc, raw_rc=raw_rc, output=text, timed_out=timed_out, duration=duration)
