"""clustat: show cluster members and service states, as rgmanager's clustat did.

Argument parsing and output only: one ``status`` request over the control
socket (:mod:`rgmanager.control`) and a rendering of the reply. The text
layout, the XML and the exit codes follow rgmanager's ``clustat`` so scripts
and monitoring checks written for it keep working (``clustat -s S`` exits 0
while S runs, else its state code; ``-Q`` tells quorum by exit status).

The renderers are pure functions of the reply, so tests pin the exact layout.

Fencing (our addition, kept out of the columns scripts parse): a member the
cluster awaits the fence of gets the status token ``Awaiting fence``; a
service with a reason (one that stays ``recovering`` until its lost owner
is fenced: "awaiting fence of node2") gets a note under the service table
and a ``Reason`` line with ``-l``; ``-x`` adds ``awaiting_fence="1"`` to
such a ``<node>`` and ``reason`` to such a ``<group>``, ``--json`` passes the
daemon's ``awaiting_fence`` and ``reason`` fields through.
"""

from __future__ import annotations

import getopt
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .. import __version__, codes, control

PROG = "clustat"
XML_VERSION = "4.1.1"  # the format version rgmanager's clustat wrote; consumers check it

NOT_RUNNING = "Could not connect to resource group manager"
TIMED_OUT = "Timed out waiting for a response from Resource Group Manager"
WARN_INQUORATE = "WARNING: this node is not quorate; the service table may be stale"
WARN_STALE = "WARNING: the resource group manager is not answering; information may be stale"

CLEAR_SCREEN = "\033[H\033[2J"
STATE_WIDTH = 14
#: States whose owner column shows the last owner in parentheses (nobody runs them now).
SHOW_LAST_OWNER = frozenset({"stopped", "disabled", "recoverable", "recovering", "failed"})
#: States for which ``clustat -s`` exits 0: the service is, or is about to be, running.
RUNNING_STATES = frozenset({"starting", "started", "stopping"})
#: rgmanager's flag bits, short markers and long names, in display order.
FLAGS: tuple[tuple[str, int, str], ...] = (("frozen", 1, "Z"), ("partial", 2, "P"))
#: Exit status when the member or service asked for does not exist.
EXIT_UNKNOWN = 255

USAGE = f"""\
usage: {PROG} <options>
    -i <interval>      Refresh every <interval> seconds.  May not be used
                       with -x.
    -I                 Display local node ID and exit
    -m <member>        Display status of <member> and exit
    -s <service>       Display status of <service> and exit
    -v                 Display version and exit
    -x                 Dump information as XML
    -Q                 Return 0 if quorate, 1 if not (no output)
    -f                 Enable fast clustat reports
    -l                 Use long format for services
    --json             Dump the status as JSON
    --timeout <sec>    Give up on a silent daemon after <sec> seconds (default 10)
"""


class UsageError(Exception):
    """Bad command line: message on stderr, exit status 1 (rgmanager's)."""


@dataclass
class Options:
    interval: float | None = None
    count: int | None = None
    local_id: bool = False
    member: str | None = None
    service: str | None = None
    quorum_only: bool = False
    xml: bool = False
    json: bool = False
    long: bool = False
    version: bool = False
    help: bool = False
    timeout: float = 10.0


def parse_args(argv: Sequence[str]) -> Options:
    """getopt, like rgmanager; ``--count`` (for tests) and ``--timeout`` are our additions."""
    try:
        opts, rest = getopt.getopt(list(argv), "i:Im:s:QxlfvSh?",
                                   ["count=", "timeout=", "json", "help"])
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from e
    if rest:
        raise UsageError(f"unexpected argument: {rest[0]}")
    o = Options()
    for flag, value in opts:
        if flag == "-i":
            o.interval = _positive(value, "-i")
        elif flag == "--count":
            o.count = int(_positive(value, "--count"))
        elif flag == "--timeout":
            o.timeout = _positive(value, "--timeout")
        elif flag == "-I":
            o.local_id = True
        elif flag == "-m":
            o.member = value
        elif flag == "-s":
            o.service = value
        elif flag == "-Q":
            o.quorum_only = True
        elif flag == "-x":
            o.xml = True
        elif flag == "--json":
            o.json = True
        elif flag == "-l":
            o.long = True
        elif flag == "-v":
            o.version = True
        elif flag in ("-h", "-?", "--help"):
            o.help = True
        # -f (fast) and -S are accepted for compatibility: every report is fast here.
    if o.xml and o.json:
        raise UsageError("Error: Options '-x' and '--json' are mutually exclusive")
    if o.interval is not None and (o.xml or o.json):
        # rgmanager only caught "-i ... -x"; a refreshing document is useless in any order.
        other = "-x" if o.xml else "--json"
        raise UsageError(f"Error: Options '-i' and '{other}' are mutually exclusive")
    return o


def _positive(value: str, flag: str) -> float:
    try:
        n = float(value)
    except ValueError:
        n = -1.0
    if n <= 0:
        raise UsageError(f"{flag}: expected a positive number, got '{value}'")
    return n


# ------------------------------------------------------------------ selection


def _matches_service(name: str, wanted: str) -> bool:
    """``-s web`` finds ``service:web``; full names work for every type (``vm:guest``)."""
    return name in (wanted, f"service:{wanted}")


def select(status: dict[str, Any], member: str | None,
           service: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Members and services to show (services sorted by name) and the exit status.

    ``-s``: 0 while the service runs, else its state code, 255 if absent.
    ``-m``: 0 online, 1 offline, 255 unknown. Both: the service rule wins, as
    rgmanager returned the result of its last section.
    """
    members = list(status.get("members") or [])
    services = sorted(status.get("services") or [], key=lambda s: str(s.get("name")))
    code = 0
    if member is not None:
        members = [m for m in members if m.get("name") == member]
        code = EXIT_UNKNOWN if not members else (0 if members[0].get("online") else 1)
    if service is not None:
        services = [s for s in services if _matches_service(str(s.get("name")), service)]
        if not services:
            code = EXIT_UNKNOWN
        elif services[0].get("state") in RUNNING_STATES:
            code = 0
        else:
            code = int(services[0].get("state_code", EXIT_UNKNOWN)) % 256
    return members, services, code


def flag_bits(svc: dict[str, Any]) -> int:
    return sum(bit for name, bit, _ in FLAGS if svc.get(name))


def flag_names(svc: dict[str, Any]) -> list[str]:
    return [name for name, _, _ in FLAGS if svc.get(name)]


def _name_or_none(name: object) -> str:
    return str(name) if name else "none"


def _ctime(t: object) -> str:
    try:
        return time.ctime(float(t))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "unknown"


def member_status(m: dict[str, Any]) -> str:
    """``Online, Local, rgmanager``: rgmanager's tokens, in its order."""
    parts = ["Online" if m.get("online") else "Offline"]
    if m.get("local"):
        parts.append("Local")
    if m.get("estranged"):
        parts.append("Estranged")
    if m.get("rgmanager"):
        parts.append("rgmanager")
    if m.get("awaiting_fence"):
        parts.append("Awaiting fence")
    return ", ".join(parts)


# ----------------------------------------------------------------------- text


def _col(text: str, width: int) -> str:
    """C's ``%-*.*s``: pad and truncate to exactly ``width``."""
    return text[:width].ljust(width)


def render_text(status: dict[str, Any], *, cols: int = 80, strip_prefix: bool = False,
                member: str | None = None, service: str | None = None, long: bool = False,
                now: float | None = None) -> list[str]:
    """rgmanager's clustat text report, one string per line.

    ``strip_prefix`` drops ``service:`` from names (rgmanager did so on a tty,
    where width is precious; pipes keep full names for scripts). With ``-s`` or
    ``-m`` only the asked-for tables are printed, as rgmanager did: no "Cluster
    Status for" header, no member status, no warnings (:func:`main` prints
    those on stderr then).
    """
    members, services, _ = select(status, member, service)
    lines: list[str] = []
    if member is None and service is None:
        cluster = status.get("cluster") or {}
        lines.append(f"Cluster Status for {cluster.get('name', 'unknown')} @ "
                     f"{time.ctime(time.time() if now is None else now)}")
        lines += _warnings(status)
        quorate = bool(status.get("quorate"))
        lines += [f"Member Status: {'Quorate' if quorate else 'Inquorate'}", ""]
    if service is None or member is not None:
        lines += _member_lines(members, cols // 2)
    if member is not None and service is None:
        return lines
    if long:
        lines += _service_blocks(services)
    else:
        lines += _service_rows(services, (cols - 20) // 2, strip_prefix)
        lines += _reason_notes(services, strip_prefix)
    return lines


def _reason_notes(services: list[dict[str, Any]], strip_prefix: bool) -> list[str]:
    """Why services are in their state (e.g. waiting for a fence), under the table."""
    notes = []
    for s in services:
        if s.get("reason"):
            name = str(s.get("name", ""))
            if strip_prefix and name.startswith("service:"):
                name = name[len("service:"):]
            notes.append(f" {name} is {s.get('state', 'unknown')}: {s['reason']}")
    return ["", *notes] if notes else []


def _member_lines(members: list[dict[str, Any]], width: int) -> list[str]:
    lines = [" " + _col("Member Name", width) + _col("ID", 4) + " Status",
             " " + _col("------ ----", width) + _col("----", 4) + " ------"]
    for m in members:
        lines.append(" " + _col(str(m.get("name", "")), width) +
                     f" {int(m.get('nodeid', 0)):4d} " + member_status(m))
    lines.append("")
    return lines


def _owner_column(svc: dict[str, Any], width: int) -> str:
    if svc.get("state") in SHOW_LAST_OWNER:
        return "(" + _name_or_none(svc.get("last_owner"))[: width - 2] + ")"
    return _name_or_none(svc.get("owner"))


def _state_column(svc: dict[str, Any]) -> str:
    """The state padded to 14, with ``[ZP]`` flag markers at the right edge."""
    state = str(svc.get("state", "unknown"))
    marks = "".join(short for name, _, short in FLAGS if svc.get(name))
    if not marks:
        return _col(state, STATE_WIDTH)
    marker = f"[{marks}]"
    return _col(state, STATE_WIDTH - len(marker) - 1) + " " + marker


def _service_rows(services: list[dict[str, Any]], width: int, strip_prefix: bool) -> list[str]:
    lines = [" " + _col("Service Name", width) + " " + _col("Owner (Last)", width) + " " +
             _col("State", STATE_WIDTH),
             " " + _col("------- ----", width) + " " + _col("----- ------", width) + " " +
             _col("-----", STATE_WIDTH)]
    for s in services:
        name = str(s.get("name", ""))
        if strip_prefix and name.startswith("service:"):
            name = name[len("service:"):]
        lines.append(" " + _col(name, width) + " " + _col(_owner_column(s, width), width) +
                     " " + _state_column(s))
    return lines


def _service_blocks(services: list[dict[str, Any]]) -> list[str]:
    """``-l``: one block per service, with everything the table abbreviates."""
    lines = ["Service Information", "------- -----------", ""]
    for s in services:
        flags = flag_names(s)
        lines += [
            f"Service Name      : {s.get('name', '')}",
            f"  Current State   : {s.get('state', 'unknown')} ({s.get('state_code', 0)})",
            f"  Flags           : {', '.join(flags) if flags else 'none'} ({flag_bits(s)})",
            f"  Owner           : {_name_or_none(s.get('owner'))}",
            f"  Last Owner      : {_name_or_none(s.get('last_owner'))}",
            f"  Last Transition : {_ctime(s.get('last_transition'))}",
        ]
        if s.get("partial"):
            # Our addition: which non-critical parts were stopped, so -c knows what it fixes.
            lines.append(f"  Stopped parts   : {', '.join(s.get('disabled_parts') or [])}")
        if s.get("reason"):
            lines.append(f"  Reason          : {s['reason']}")  # ours: e.g. a fence awaited
        lines.append("")
    return lines


# ------------------------------------------------------------------------ XML


def render_xml(status: dict[str, Any], *, member: str | None = None,
               service: str | None = None) -> str:
    """rgmanager's ``clustat -x`` document (format version 4.1.1).

    With ``-s``/``-m`` rgmanager wrote only the asked-for ``<nodes>``/``<groups>``:
    no ``<cluster>``, no ``<quorum>``.
    """
    members, services, _ = select(status, member, service)
    root = etree.Element("clustat", version=XML_VERSION)
    if member is None and service is None:
        cluster = status.get("cluster") or {}
        etree.SubElement(root, "cluster", name=str(cluster.get("name", "")),
                         id=str(int(cluster.get("id", 0))),
                         generation=str(int(cluster.get("generation", 0))))
        etree.SubElement(root, "quorum", quorate="1" if status.get("quorate") else "0",
                         groupmember="1")
    if service is None or member is not None:
        nodes = etree.SubElement(root, "nodes")
        for m in members:
            node = etree.SubElement(
                nodes, "node", name=str(m.get("name", "")),
                state="1" if m.get("online") else "0",
                local="1" if m.get("local") else "0",
                estranged="1" if m.get("estranged") else "0",
                rgmanager="1" if m.get("rgmanager") else "0",
                rgmanager_master="0", qdisk="0",
                nodeid=f"0x{int(m.get('nodeid', 0)):08x}")
            if m.get("awaiting_fence"):
                node.set("awaiting_fence", "1")  # ours; absent otherwise
    if member is None or service is not None:
        groups = etree.SubElement(root, "groups")
        for s in services:
            lt = s.get("last_transition") or 0
            group = etree.SubElement(
                groups, "group", name=str(s.get("name", "")),
                state=str(int(s.get("state_code", 0))), state_str=str(s.get("state", "")),
                flags=str(flag_bits(s)), flags_str=", ".join(flag_names(s)),
                owner=_name_or_none(s.get("owner")),
                last_owner=_name_or_none(s.get("last_owner")),
                restarts=str(int(s.get("restarts", 0))),
                last_transition=str(int(float(lt))), last_transition_str=_ctime(lt))
            if s.get("reason"):
                group.set("reason", str(s["reason"]))  # ours; absent otherwise
    body = etree.tostring(root, pretty_print=True, encoding="unicode")
    return '<?xml version="1.0"?>\n' + body


# ----------------------------------------------------------------------- main


def _terminal() -> tuple[int, bool]:
    """(columns, is a tty): 80 columns for pipes so scripts see a stable layout."""
    if sys.stdout.isatty():
        try:
            return max(os.get_terminal_size(sys.stdout.fileno()).columns, 40), True
        except OSError:
            return 80, True
    return 80, False


def render_json(status: dict[str, Any], *, member: str | None = None,
                service: str | None = None) -> dict[str, Any]:
    """``--json``: the daemon's status without the reply envelope, filtered as the text.

    ``-s`` alone leaves out ``members``, ``-m`` alone leaves out ``services``
    (as the text and XML leave out those tables); the rest (cluster, quorate,
    stale, local) stays so a script can tell how far to trust the answer.
    """
    members, services, _ = select(status, member, service)
    data = {k: v for k, v in status.items() if k not in ("code", "text")}
    data["members"], data["services"] = members, services
    if not (service is None or member is not None):
        del data["members"]
    if not (member is None or service is not None):
        del data["services"]
    return data


def not_running_message(error: object = None) -> str:
    """"Could not connect ...", naming the socket tried and where that path came from."""
    path = control.socket_path()
    reason = str(error) if error else path
    if not reason.startswith(path):
        reason = f"{path}: {reason}"
    origin = (f"from ${control.SOCKET_ENV}" if os.environ.get(control.SOCKET_ENV)
              else f"the default; set ${control.SOCKET_ENV} to use another socket")
    return f"{NOT_RUNNING} at {reason} ({origin})"


def _fetch(o: Options) -> dict[str, Any]:
    reply = control.request({"op": "status"}, timeout=o.timeout)
    if reply["code"] != codes.ESUCCESS:
        raise _Failed(reply.get("text") or codes.strerror(reply["code"]))
    return reply


class _Failed(Exception):
    pass


def _report(o: Options) -> tuple[str | None, int]:
    """One report: (text for stdout or None, exit status); errors go to stderr."""
    try:
        status = _fetch(o)
    except control.DaemonNotRunning as e:
        _err(o, not_running_message(e))
        return None, 1
    except PermissionError:
        _err(o, not_running_message("permission denied (the control socket is root-only)"))
        return None, 1
    except TimeoutError:
        _err(o, TIMED_OUT)
        return None, 1
    except (control.ProtocolError, _Failed, OSError) as e:
        _err(o, f"{PROG}: {e}")
        return None, 1

    if o.quorum_only:
        return None, 0 if status.get("quorate") else 1
    if o.local_id:
        local = status.get("local")
        me = next((m for m in status.get("members") or []
                   if m.get("local") or (local and m.get("name") == local)), None)
        if me is None:
            _err(o, "Local node ID not known")
            return None, 1
        return f"0x{int(me.get('nodeid', 0)):08x}\n", 0

    _, _, code = select(status, o.member, o.service)
    if o.json:
        data = render_json(status, member=o.member, service=o.service)
        return json.dumps(data, indent=2) + "\n", code
    if o.xml:
        for warning in _warnings(status):
            _err(o, warning)  # keep stdout a well-formed document
        return render_xml(status, member=o.member, service=o.service), code
    if o.member is not None or o.service is not None:
        for warning in _warnings(status):
            _err(o, warning)  # stdout keeps rgmanager's -s/-m layout for scripts
    cols, tty = _terminal()
    lines = render_text(status, cols=cols, strip_prefix=tty, member=o.member,
                        service=o.service, long=o.long)
    return "\n".join(lines) + "\n", code


def _warnings(status: dict[str, Any]) -> list[str]:
    out = []
    if not status.get("quorate"):
        out.append(WARN_INQUORATE)
    if status.get("stale"):
        out.append(WARN_STALE)
    return out


def _err(o: Options, message: str) -> None:
    if not o.quorum_only:
        print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    try:
        o = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 1
    if o.help:
        print(USAGE, end="")
        return 0
    if o.version:
        print(f"{PROG} version {__version__}")
        return 0
    if o.interval is None:
        text, code = _report(o)
        if text:
            sys.stdout.write(text)
        return code
    return _refresh(o, o.interval)


def _refresh(o: Options, interval: float) -> int:
    """``-i``: redraw every ``interval`` seconds until interrupted (or ``--count`` reports).

    A failed fetch is shown and retried: a monitor should survive a daemon restart.
    """
    n = 0
    code = 0
    try:
        while True:
            text, code = _report(o)
            sys.stdout.write(CLEAR_SCREEN + (text or ""))
            sys.stdout.flush()
            n += 1
            if o.count is not None and n >= o.count:
                return code
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
