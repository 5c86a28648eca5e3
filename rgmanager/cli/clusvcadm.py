"""clusvcadm: ask the local resource group manager to enable, disable, move... a service.

Argument parsing and output only: the daemon decides, over the control socket
(:mod:`rgmanager.control`). Messages, their order and the exit codes follow
rgmanager's ``clusvcadm`` so existing scripts and runbooks keep working:
the exit status is the reply code modulo 256, except "already running", which
is success.
"""

from __future__ import annotations

import contextlib
import getopt
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__, codes, control
from ..planner.events import Op
from ..state import service_name

PROG = "clusvcadm"

USAGE = f"""\
usage: {PROG} [command]

Resource Group Control Commands:
  -v                     Display version and exit
  -d <group>             Disable <group>.  This stops a group
                         until an administrator enables it again,
                         the cluster loses and regains quorum, or
                         an administrator-defined event script
                         explicitly enables it again.
  -e <group>             Enable <group>
  -e <group> -F          Enable <group> according to failover
                         domain rules
  -e <group> -m <member> Enable <group> on <member>
  -r <group> -m <member> Relocate <group> [to <member>]
                         Stops a group and starts it on another
                         cluster member.
  -M <group> -m <member> Migrate <group> to <member>
                         (e.g. for live migration of VMs)
  -q                     Quiet operation
  -R <group>             Restart a group in place.
  -s <group>             Stop <group>.  This temporarily stops
                         a group.  After the next group or
                         cluster member transition, the group
                         will be restarted (if possible).
  -Z <group>             Freeze resource group.  This prevents
                         transitions and status checks, and is
                         useful if an administrator needs to
                         administer part of a service without
                         stopping the whole service.
  -U <group>             Unfreeze (thaw) resource group.  Restores
                         a group to normal operation.
  -c <group>             Convalesce (repair, fix) resource group.
                         Attempts to start failed, non-critical
                         resources within a resource group.
Resource Group Locking (for cluster Shutdown / Debugging):
  -l                     Lock local resource group managers.
                         This prevents resource groups from
                         starting.
  -S                     Show lock state
  -u                     Unlock resource group managers.
                         This allows resource groups to start.
Fencing:
  --fence-ack <member>   Tell the cluster that <member>, a lost member
                         waiting to be fenced, is off: you have made
                         sure it is powered off or cut off from the
                         shared storage (rgmanager's fence_ack_manual).
                         Its services, shown as recovering ("awaiting
                         fence of <member>"), are then recovered on
                         other members. The cluster takes your word for
                         it: never use it on a member that may still
                         run services. Logged by the daemon.
Waiting for the resource group manager:
  --timeout <seconds>    Wait at most <seconds> (default 300) for the
                         reply; then print "Timed out waiting for a
                         reply from the resource group manager" and
                         exit 1.  The request is not cancelled: the
                         manager may still carry it out (see clustat).
                         Checking the -m/-n member waits at most 30
                         seconds of it.  The manager itself answers
                         "Temporary failure; try again" (exit 250) if
                         the cluster does not handle a request within
                         300 seconds.
"""

NOT_RUNNING = "Could not connect to resource group manager"
DEFAULT_TIMEOUT = 300.0
#: The membership check before -m/-n waits at most this long (of --timeout).
STATUS_TIMEOUT = 30.0
TIMED_OUT = "Timed out waiting for a reply from the resource group manager"

#: option letter -> (request op, verb printed after "Local machine"/"Member N").
SERVICE_ACTIONS: dict[str, tuple[Op, str]] = {
    "-e": (Op.ENABLE, "trying to enable"),
    "-d": (Op.DISABLE, "disabling"),
    "-r": (Op.RELOCATE, "trying to relocate"),
    "-M": (Op.MIGRATE, "trying to migrate"),
    "-R": (Op.RESTART, "trying to restart"),
    "-s": (Op.STOP, "stopping"),
    "-Z": (Op.FREEZE, "freezing"),
    "-U": (Op.UNFREEZE, "unfreezing"),
    "-c": (Op.CONVALESCE, "convalescing"),
}
LOCK_ACTIONS = {"-l": "lock", "-u": "unlock", "-S": "lock_status"}
#: ``Options.op`` of --fence-ack (a control op of its own, not a service request).
FENCE_ACK = control.OP_FENCE_ACK


class UsageError(Exception):
    """Bad command line: usage goes to stderr and the exit status is 1 (rgmanager's)."""


@dataclass
class Options:
    op: str | None = None
    verb: str = ""
    service: str | None = None
    node: str | None = None
    follow_domain: bool = False
    quiet: bool = False
    version: bool = False
    help: bool = False
    timeout: float = DEFAULT_TIMEOUT
    fence_node: str | None = None  # --fence-ack


def parse_args(argv: Sequence[str]) -> Options:
    """getopt, like rgmanager, so ``-e web -m node2`` and ``-mnode2`` both work.

    As with getopt in C, a later action option replaces an earlier one.
    """
    try:
        opts, rest = getopt.getopt(list(argv), "c:d:e:r:n:m:FvR:s:M:Z:U:qh?luS",
                                   ["timeout=", "fence-ack="])
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from e
    if rest:
        raise UsageError(f"unexpected argument: {rest[0]}")
    o = Options()
    for flag, value in opts:
        if flag in SERVICE_ACTIONS:
            o.op, o.verb = SERVICE_ACTIONS[flag]
            o.service = service_name(value)
        elif flag in LOCK_ACTIONS:
            o.op, o.service = LOCK_ACTIONS[flag], None
        elif flag == "--fence-ack":
            if not value:
                raise UsageError("--fence-ack needs a member name")
            o.op, o.service, o.fence_node = FENCE_ACK, None, value
        elif flag in ("-m", "-n"):
            o.node = value
        elif flag == "-F":
            o.follow_domain = True
        elif flag == "-q":
            o.quiet = True
        elif flag == "-v":
            o.version = True
        elif flag in ("-h", "-?"):
            o.help = True
        elif flag == "--timeout":
            try:
                o.timeout = float(value)
            except ValueError as e:
                raise UsageError(f"bad timeout: {value}") from e
            if not o.timeout > 0:  # 0 would mean "never wait", a negative one a traceback
                raise UsageError(f"bad timeout: {value} (expected a positive number of seconds)")
    return o


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        o = parse_args(args)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return 1
    if o.help:
        print(USAGE, end="")
        return 0
    if o.version:
        print(f"{PROG} version {__version__}")
        return 0
    if o.quiet:
        # rgmanager closes stdout for -q; errors on stderr still show.
        with contextlib.redirect_stdout(io.StringIO()):
            return _run(o)
    return _run(o)


def _run(o: Options) -> int:
    if o.follow_domain and o.node is not None:
        print("Cannot use '-F' with '-n' or '-m'", file=sys.stderr)
        return 1
    if o.op is None:
        print(USAGE, end="", file=sys.stderr)
        return 1
    try:
        if o.op in LOCK_ACTIONS.values():
            return _lock_op(o)
        if o.op == FENCE_ACK:
            return _fence_ack(o)
        return _service_op(o)
    except control.DaemonNotRunning:
        print(NOT_RUNNING, file=sys.stderr)
        return 1
    except PermissionError:
        # The socket is root-only; rgmanager answered non-root callers with EPERM.
        print(codes.strerror(codes.EPERM), file=sys.stderr)
        return codes.exit_status(codes.EPERM)
    except TimeoutError:
        print(TIMED_OUT, file=sys.stderr)
        return 1
    except (control.ProtocolError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1


def _lock_op(o: Options) -> int:
    assert o.op is not None
    reply = control.request({"op": o.op}, timeout=o.timeout)
    ok = reply["code"] == codes.ESUCCESS
    if o.op == "lock_status":
        if not ok:
            print("Query operation failed", file=sys.stderr)
            return 1
        print("Resource groups locked" if reply.get("locked") else "Resource groups unlocked")
        return 0
    if not ok:
        print(f"{'Lock' if o.op == 'lock' else 'Unlock'} operation failed", file=sys.stderr)
        return 1
    print(f"Resource groups {'locked' if o.op == 'lock' else 'unlocked'}")
    return 0


def _fence_ack(o: Options) -> int:
    """--fence-ack NODE: one control request; the reply's text, exit as any request."""
    assert o.fence_node is not None
    sock = control.connect(timeout=o.timeout)
    print(f"Acknowledging that {o.fence_node} is fenced...", end="", flush=True)
    try:
        reply = control.call(sock, control.fence_ack_payload(o.fence_node))
    except BaseException:
        print(flush=True)  # finish the "..." line before the error goes to stderr
        raise
    code = int(reply["code"])
    print(str(reply.get("text") or codes.strerror(code)))
    return codes.exit_status(code)


def resolve_member(name: str, members: Sequence[dict[str, Any]]) -> str | None:
    """Map a ``-m`` argument to a member name; print rgmanager's messages on the way.

    An exact name wins; otherwise a unique prefix match (``node2`` for
    ``node2.example.com``) is used after saying so. None means: give up.
    """
    names = [str(m.get("name")) for m in members]
    if name in names:
        return name
    print(f"'{name}' not in membership list", file=sys.stderr)
    # An empty name is a prefix of every name: it matches nothing, it does not pick one.
    matches = [n for n in names if name and n.startswith(name)]
    if not matches:
        print(f"No matches for '{name}' found", file=sys.stderr)
        return None
    if len(matches) > 1:
        print(f"More than one possible match for '{name}' found", file=sys.stderr)
        return None
    print(f"Closest match: '{matches[0]}'", file=sys.stderr)
    return matches[0]


def reply_text(code: int, reply: dict[str, Any]) -> str:
    """rgmanager's ``rg_strerror`` text for known codes (scripts grep it), else the daemon's."""
    if codes.is_known_code(code):
        return codes.strerror(code)
    return str(reply.get("text") or codes.strerror(code))


def _service_op(o: Options) -> int:
    assert o.op is not None and o.service is not None
    svc = o.service
    node = o.node
    if o.op == Op.MIGRATE and node is None:
        print("Migration requires a target cluster member", file=sys.stderr)
        return 1

    if node is not None:
        # Validate the target against the daemon's membership before asking for anything.
        status = control.request({"op": "status"}, timeout=min(o.timeout, STATUS_TIMEOUT))
        if status["code"] != codes.ESUCCESS:
            print(status.get("text") or codes.strerror(status["code"]), file=sys.stderr)
            return codes.exit_status(status["code"])
        members = list(status.get("members") or [])
        resolved = resolve_member(node, members)
        if resolved is None:
            return 1
        node = resolved
        if o.op == Op.MIGRATE:
            member = next(m for m in members if m.get("name") == node)
            if not member.get("online"):
                print(f"'{node}' is offline", file=sys.stderr)
                return 1

    # The daemon gives up (and drops the request if still queued) before we do.
    payload: dict[str, Any] = {"op": o.op, "service": svc, "node": node,
                               "timeout": o.timeout}
    if o.op == Op.ENABLE:
        payload["follow_domain"] = o.follow_domain

    if o.op in (Op.RELOCATE, Op.MIGRATE):
        what = str(o.op)
        line = f"Trying to {what} {svc}" + (f" to {node}" if node is not None else "")
    elif node is None:
        # rgmanager says "Member N" whenever -m/-n is given, even naming the local node.
        line = f"Local machine {o.verb} {svc}"
    else:
        line = f"Member {node} {o.verb} {svc}"

    # Connect first so a dead daemon is reported without a dangling "trying to..." line.
    sock = control.connect(timeout=o.timeout)
    print(f"{line}...", end="", flush=True)
    try:
        reply = control.call(sock, payload)
    except BaseException:
        print(flush=True)  # finish the "..." line before the error goes to stderr
        raise
    code = int(reply["code"])
    print(reply_text(code, reply))
    owner = reply.get("owner")
    if o.op in (Op.ENABLE, Op.RELOCATE) and code == codes.ESUCCESS and owner:
        warn = "Warning: " if node is not None and owner != node else ""
        print(f"{warn}{svc} is now running on {owner}")
    return codes.exit_status(code)


if __name__ == "__main__":
    sys.exit(main())
