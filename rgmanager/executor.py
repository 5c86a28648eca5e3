"""Run one resource-agent action and report what happened.

This is the only place where rgmanager-py starts agents (actions and
meta-data alike), so everything that makes agent execution safe lives here.
Third-party agents run as processes; our own agents (``resource-agents/``)
run in the persistent agent host (:mod:`rgmanager.agenthost`) with the same
argv, environment, timeout and crash guarantees, and as processes when
``RGMANAGER_AGENT_HOST=0``.  :func:`run_program` runs other programs (fence
agents) under the same rules.  For agent processes:

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

from .agenthost import pool as agent_host
from .agenthost.output import DRAIN_WINDOW, BoundedOutput, drain_forever
from .agenthost.output import MAX_OUTPUT as MAX_OUTPUT  # the executor's limit, re-exported
from .agenthost.procgroup import exited, group_alive, killpg, pidfd_open

log = logging.getLogger(__name__)

#: Where agents look for programs: the system directories come first, so a
#: program name an agent runs (``mount``, ``python3`` of a ``#!/usr/bin/env``
#: line) is the system's, never one from a (possibly user-writable) virtualenv.
#: The directory of the running Python is appended (see :func:`build_env`).
SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Seconds between SIGTERM and SIGKILL when a timeout is enforced.
KILL_GRACE = 5.0

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
    #: False: stderr goes to /dev/null (meta-data, whose stdout must be pure XML).
    merge_stderr: bool = True


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


class _Phase(enum.Enum):
    """Where a supervised process is in its life (see :class:`_Supervisor`)."""

    RUNNING = "running"  # waiting for the leader to exit or the deadline to pass
    TERMINATING = "terminating"  # SIGTERM sent to the group; SIGKILL after the grace
    DRAINING = "draining"  # SIGKILL sent or leader gone: read what is left, briefly
    DONE = "done"


class _Supervisor:
    """Watch one process group until its leader is gone and its output is read.

    A small state machine, one transition per wake-up::

        RUNNING --exit--> DRAINING --pipes closed or DRAIN_WINDOW--> DONE
        RUNNING --deadline (enforced)--> TERMINATING
        TERMINATING --leader and group gone--> DRAINING
        TERMINATING --kill_grace passed--> SIGKILL --> DRAINING

    An unenforced deadline only logs a warning once and stays RUNNING.  The
    leader is never reaped here (see :mod:`rgmanager.agenthost.procgroup`).
    """

    def __init__(self, pid: int, pipes: Mapping[int, BoundedOutput], *, timeout: float | None,
                 enforce: bool, kill_grace: float, label: str) -> None:
        self.pid = pid
        self.pipes = dict(pipes)  # fd -> buffer; an fd leaves at EOF
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout is not None else None
        self.enforce = enforce
        self.kill_grace = kill_grace
        self.label = label
        self.phase = _Phase.RUNNING
        self.timed_out = False
        self.leader_exited = False
        self.term_sent = 0.0
        self.settle_from = 0.0  # when the last process we waited for went away
        self.pidfd = pidfd_open(pid)

    def open_fds(self) -> list[int]:
        """Output pipes not yet at EOF (left to a drain thread by the caller)."""
        return list(self.pipes)

    def run(self) -> None:
        try:
            while self.phase is not _Phase.DONE:
                self._wait(self._step(time.monotonic()))
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
            if not self.leader_exited:
                # Only reachable through an exception (e.g. KeyboardInterrupt):
                # do not leave a runaway process behind.
                killpg(self.pid, signal.SIGKILL)

    def _step(self, now: float) -> float:
        """Make at most one transition; return how long we may sleep."""
        if not self.leader_exited and exited(self.pid):
            self.leader_exited = True
            self.settle_from = max(self.settle_from, now)
        if self.phase is _Phase.RUNNING:
            return self._running(now)
        if self.phase is _Phase.TERMINATING:
            return self._terminating(now)
        return self._draining(now)

    def _running(self, now: float) -> float:
        if self.leader_exited:
            self.phase = _Phase.DRAINING
            return 0.0
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            if not self.enforce:
                log.warning("%s exceeded its timeout of %g s (not enforced)",
                            self.label, self.timeout)
                return self._leader_tick()
            log.error("%s timed out after %g seconds; sending SIGTERM to its process group",
                      self.label, self.timeout)
            self.timed_out = True
            killpg(self.pid, signal.SIGTERM)
            self.term_sent = now
            self.phase = _Phase.TERMINATING
            return 0.0
        wait = self._leader_tick()
        return wait if self.deadline is None else min(wait, self.deadline - now)

    def _terminating(self, now: float) -> float:
        if self.leader_exited and not group_alive(self.pid, self.pid):
            self.phase = _Phase.DRAINING  # everything obeyed SIGTERM
            return 0.0
        if now - self.term_sent >= self.kill_grace:
            log.error("%s still running %g seconds after SIGTERM; sending SIGKILL "
                      "to its process group", self.label, self.kill_grace)
            killpg(self.pid, signal.SIGKILL)
            self.settle_from = max(self.settle_from, now)
            self.phase = _Phase.DRAINING
            return 0.0
        return min(_TICK, self.term_sent + self.kill_grace - now)

    def _draining(self, now: float) -> float:
        if not self.leader_exited:
            return self._leader_tick()  # SIGKILLed: it goes away at once
        # Done once the pipes are closed, or after a short window if
        # leftovers (a daemon) still hold them open.
        if not self.pipes or now - self.settle_from >= DRAIN_WINDOW:
            self.phase = _Phase.DONE
            return 0.0
        return self.settle_from + DRAIN_WINDOW - now

    def _leader_tick(self) -> float:
        """How long to sleep while waiting for the leader to exit."""
        return 3600.0 if self.pidfd is not None else _TICK

    def _wait(self, wait: float) -> None:
        """Sleep up to *wait* seconds, reading output and noticing the leader's exit."""
        if self.phase is _Phase.DONE:
            return
        fds = list(self.pipes)
        if self.pidfd is not None and not self.leader_exited:
            fds.append(self.pidfd)
        if not fds:
            time.sleep(max(0.0, wait))
            return
        ready, _, _ = select.select(fds, [], [], max(0.0, wait))
        for fd in ready:
            if fd in self.pipes:
                data = os.read(fd, 65536)
                if data:
                    self.pipes[fd].add(data)
                else:
                    del self.pipes[fd]
                    os.close(fd)


def _reap(proc: subprocess.Popen[bytes], sup: _Supervisor) -> int:
    """Reap the leader; hand pipes still held by leftovers to a drain thread."""
    raw_rc = proc.wait()
    for fd in sup.open_fds():
        threading.Thread(target=drain_forever, args=(fd, sup.label), name="executor-drain",
                         daemon=True).start()
    return raw_rc


@dataclass(frozen=True)
class ProgramResult:
    """Outcome of :func:`run_program`.

    ``returncode`` is None when the program did not exit by itself: it timed
    out, was killed by a signal, or could not be started (then ``stderr``
    says why).
    """

    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _feed(fd: int, data: bytes) -> None:
    """Write a program's stdin from a thread, so a large input cannot deadlock
    against a program that writes before it reads."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:  # the program closed its stdin (EPIPE) or is gone
        pass
    finally:
        os.close(fd)


def run_program(argv: Sequence[str], *, stdin: bytes | None = None,
                env: Mapping[str, str] | None = None, timeout: float,
                kill_grace: float = KILL_GRACE) -> ProgramResult:
    """Run a program that is not a resource agent (a fence agent) with the
    executor's guarantees: argv list, :func:`base_env` plus *env*, its own
    process group killed as a whole on timeout (SIGTERM, SIGKILL after
    *kill_grace*), bounded stdout and stderr.  Never raises for program trouble.
    """
    start = time.monotonic()
    label = f"{os.path.basename(argv[0]) if argv else '?'}"
    full_env = base_env()
    for name, value in (env or {}).items():
        if _valid_env_item("environment variable", name, str(value)):
            full_env[name] = str(value)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r, in_w = os.pipe2(os.O_CLOEXEC) if stdin is not None else (None, None)
    try:
        proc = subprocess.Popen(
            list(argv), stdin=in_r if in_r is not None else subprocess.DEVNULL,
            stdout=out_w, stderr=err_w, env=full_env, close_fds=True,
            start_new_session=True, restore_signals=True, cwd="/",
        )
    except (OSError, ValueError) as exc:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        log.error("cannot run %s: %s", label, exc)
        return ProgramResult(None, "", f"cannot run {label}: {exc}",
                             time.monotonic() - start, False)
    finally:
        os.close(out_w)
        os.close(err_w)
        if in_r is not None:
            os.close(in_r)
    if in_w is not None:
        threading.Thread(target=_feed, args=(in_w, stdin), name="executor-stdin",
                         daemon=True).start()
    out, err = BoundedOutput(), BoundedOutput()
    sup = _Supervisor(proc.pid, {out_r: out, err_r: err}, timeout=timeout if timeout > 0 else None,
                      enforce=True, kill_grace=kill_grace, label=label)
    sup.run()
    raw_rc = _reap(proc, sup)
    code = None if sup.timed_out or raw_rc < 0 else raw_rc
    return ProgramResult(code, out.text(), err.text(), time.monotonic() - start, sup.timed_out)


def run_action(req: ActionRequest, *, kill_grace: float = KILL_GRACE) -> ActionResult:
    """Run ``req.agent req.action [extra_args]`` and wait for its result.

    Never raises for agent trouble: a missing or non-executable agent is
    ``ERR_INSTALLED`` (5), a timeout or death by signal is ``ERR_GENERIC`` (1),
    so callers have one code path.  With an enforced timeout the agent's whole
    process group gets SIGTERM, then SIGKILL after *kill_grace* seconds.
    """
    start = time.monotonic()
    agent = os.path.abspath(req.agent)  # never let PATH pick the program
    if not os.path.isfile(agent):
        return _not_installed(req, "no such file", start)
    if not os.access(agent, os.X_OK):
        return _not_installed(req, "not executable", start)
    module = agent_host.builtin_module(agent) if agent_host.enabled() else None
    if module is not None:
        try:
            return _run_in_host(req, agent, module, kill_grace, start)
        except OSError as exc:  # no worker could be started: the agent still runs
            log.warning("agent host unavailable (%s); running %s as a process", exc, agent)
    return _run_process(req, agent, kill_grace, start)


_host_lock = threading.Lock()
_host: agent_host.Pool | None = None


def host_pool() -> agent_host.Pool:
    """The agent host serving our own agents (started on first use)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = agent_host.Pool(env=base_env())
        return _host


def host_worker_pids() -> list[int]:
    """The agent host's live workers, without starting any (CPU accounting)."""
    with _host_lock:
        pool = _host
    return pool.worker_pids() if pool is not None else []


def close_host_pool() -> None:
    """End the host's idle workers (tests, shutdown); the next call starts new ones."""
    global _host
    with _host_lock:
        pool, _host = _host, None
    if pool is not None:
        pool.close()


def _run_in_host(req: ActionRequest, agent: str, module: str, kill_grace: float,
                 start: float) -> ActionResult:
    """One of our agents, in a persistent worker: same argv, environment and
    guarantees as a process, without starting an interpreter per action."""
    label = f"{req.action} on {req.instance}"
    log.debug("%s: %s in the agent host (parameters: %s)", label, module,
              ", ".join(sorted(req.params)) or "-")
    call = agent_host.HostCall(module=module, argv=[agent, req.action, *req.extra_args],
                               env=build_env(req), merge_stderr=req.merge_stderr)
    timeout = req.timeout if req.timeout and req.timeout > 0 else None
    got = host_pool().run(call, timeout=timeout, enforce=req.enforce_timeout,
                          kill_grace=kill_grace, label=label)
    return _finish(req, label, got.raw_rc, got.timed_out or got.crashed, got.output, start,
                   timed_out=got.timed_out)


def _run_process(req: ActionRequest, agent: str, kill_grace: float,
                 start: float) -> ActionResult:
    """The agent as a process of its own: fork, exec, supervise, reap."""
    label = f"{req.action} on {req.instance}"
    argv = [agent, req.action, *req.extra_args]
    env = build_env(req)
    log.debug("%s: exec %s (parameters: %s)", label, argv, ", ".join(sorted(req.params)) or "-")

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT if req.merge_stderr else subprocess.DEVNULL,
            env=env,
            close_fds=True,
            start_new_session=True,  # own process group: killpg reaches its children
            restore_signals=True,
            cwd="/",
        )
    except OSError as exc:
        os.close(read_fd)
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR):
            return _not_installed(req, exc.strerror or str(exc), start)
        return _not_installed(req, str(exc), start)
    finally:
        os.close(write_fd)

    output = BoundedOutput()
    timeout = req.timeout if req.timeout and req.timeout > 0 else None
    sup = _Supervisor(proc.pid, {read_fd: output}, timeout=timeout,
                      enforce=req.enforce_timeout, kill_grace=kill_grace, label=label)
    try:
        sup.run()
    finally:
        raw_rc = _reap(proc, sup)
    return _finish(req, label, raw_rc, sup.timed_out, output.text(), start)


def _finish(req: ActionRequest, label: str, raw_rc: int, failed: bool, text: str,
            start: float, *, timed_out: bool | None = None) -> ActionResult:
    """The caller's view of a finished run: OCF code, logged with its output.

    *failed* (timed out, or the host worker crashed) and death by a signal
    are generic errors whatever the raw code says."""
    timed_out = failed if timed_out is None else timed_out
    duration = time.monotonic() - start
    if failed or raw_rc < 0:
        rc = int(OcfRc.ERR_GENERIC)
    elif req.lsb:
        rc = lsb_to_ocf(req.action, raw_rc)
    else:
        rc = raw_rc
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
