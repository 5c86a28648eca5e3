"""Side by side with Pacemaker on one node: CPU of N monitored resources.

Run (as root): .venv/bin/python -m benchmarks.bench_vs_pacemaker
    [--n 100,1000] [--interval 10] [--window 60] [--repeats 3] [--json]

Three systems, each with N resources monitored every ``--interval`` seconds:

* **pacemaker**: Pacemaker (Debian's 2.1, installed here with apt-get if it
  is missing; nothing else installs it) on a one-node corosync cluster
  (127.0.0.1) inside a network namespace of its own, with a private ``/run``,
  ``/dev/shm`` and copy of ``/var/lib/pacemaker`` in that namespace's mount
  namespace; ``stonith-enabled=false`` (one node, nothing to fence); N
  ``ocf:heartbeat:Dummy`` primitives written in one ``cibadmin`` call;
* **ours-dummy**: our daemon (``rgmanager -c CONF``, local backend, its
  lock file, control socket and state in a temporary directory, run in a
  network namespace of its own) with N services of one heartbeat ``Dummy``
  each, its ``monitor`` set to the same interval with ``<action>``;
* **ours-script**: the same daemon with N services of one built-in
  ``script`` resource on a trivial LSB script, its ``status`` at the same
  interval.  The script appends ``/proc/uptime`` (a shell builtin read) to a
  file per resource, so the checks that really ran are counted.

Each repeat starts all N (timed until all are started), measures CPU over
``--window`` seconds of steady state, then stops all N (timed).  Pacemaker's
start and stop are one ``cibadmin --replace`` of the resources section with
every ``target-role`` changed; ours are starting the daemon and SIGTERM
(which stops every service before the daemon exits).

CPU is measured the same way for all three: every process in the system's
network namespace, utime+stime+cutime+cstime from ``/proc/PID/stat``, before
and after the window.  An agent run that starts and ends inside the window
is counted through its parent's cutime/cstime once reaped; one running at
either edge contributes only its part in the window.  Pacemaker's figure
includes corosync (it cannot run without it); ours with the local backend
has none.  "ms per due monitor" divides by the monitors *due* in the window
(N * window / interval); "ms per check run" by the checks that really ran:
Dummy runs are counted, on both sides alike, as opens of ``ocf-shellfuncs``
from the system's namespace (fanotify; every heartbeat agent run sources it
once), our script checks from the LSB script's own log.

Everything (processes, namespaces, mounts, temporary directories) is torn
down after each system, also on errors and Ctrl-C.  Nothing is addressed
outside loopback and the benchmark's own namespaces.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import bench_daemon

log = logging.getLogger(__name__)

TICK = os.sysconf("SC_CLK_TCK")
HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
# Every run of a heartbeat agent sources this once: opens of it count Dummy's runs.
SHELLFUNCS = Path("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs")
SBIN = "/usr/sbin"
PACKAGES = ("pacemaker", "pacemaker-cli-utils", "resource-agents")
PACEMAKER_TOOLS = ("pacemakerd", "crm_mon", "cibadmin", "crm_attribute", "corosync")
SYSTEMS = ("pacemaker", "ours-dummy", "ours-script")
# Pacemaker waits dc-deadtime (20 s) before electing a DC on a fresh cluster.
DC_TIMEOUT = 120.0

# The same trivial LSB script bench_daemon runs: one marker per resource;
# status logs when it was asked.
LSB = bench_daemon.LSB


# ================================================================ pure parts

def parse_n(text: str) -> list[int]:
    """``--n 100,1000`` -> [100, 1000]; each must be positive."""
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--n wants positive integers separated by commas, not {text!r}")
    return values


def corosync_conf(state_dir: Path, log_file: Path) -> str:
    """One node on 127.0.0.1 (inside its namespace): knet, no crypto, votequorum."""
    return "\n".join([
        "totem {", "    version: 2", "    cluster_name: vspcmk", "    transport: knet",
        "    crypto_cipher: none", "    crypto_hash: none", "}",
        "quorum {", "    provider: corosync_votequorum", "}",
        "nodelist {", "    node {", "        name: node1", "        nodeid: 1",
        "        ring0_addr: 127.0.0.1", "    }", "}",
        "logging {", "    to_stderr: no", "    to_syslog: no", "    to_logfile: yes",
        f"    logfile: {log_file}", "    timestamp: on", "}",
        "system {", f"    state_dir: {state_dir}", "}", ""])


def resource_ids(n: int) -> list[str]:
    return [f"d{i}" for i in range(n)]


def cib_resources(n: int, interval: float, role: str) -> str:
    """The CIB ``<resources>`` section: N heartbeat Dummy primitives.

    ``role`` ("Started" or "Stopped") is every primitive's ``target-role``:
    replacing the section with the other role starts or stops all N in one
    CIB update.
    """
    if role not in ("Started", "Stopped"):
        raise ValueError(role)
    every = f"{interval:g}s"
    parts = ["<resources>"]
    for rid in resource_ids(n):
        parts.append(
            f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy">'
            f'<meta_attributes id="{rid}-meta">'
            f'<nvpair id="{rid}-target-role" name="target-role" value="{role}"/>'
            "</meta_attributes><operations>"
            f'<op id="{rid}-monitor" name="monitor" interval="{every}" timeout="20s"/>'
            "</operations></primitive>")
    parts.append("</resources>")
    return "".join(parts)


def _cluster_conf(body: str) -> str:
    return ('<?xml version="1.0"?><cluster name="vspcmk" config_version="1">'
            '<clusternodes><clusternode name="node1" nodeid="1"/></clusternodes>'
            f"<rm>{body}</rm></cluster>\n")


def ours_dummy_conf(n: int, interval: float) -> str:
    """N services of one heartbeat Dummy (``name="dN"``), monitor every ``interval``."""
    action = f'<action name="monitor" depth="*" interval="{interval:g}"/>'
    return _cluster_conf("".join(
        f'<service name="svc{i}"><Dummy name="{rid}">{action}</Dummy></service>'
        for i, rid in enumerate(resource_ids(n))))


def ours_script_conf(n: int, interval: float, init_dir: Path) -> str:
    """N services of one ``script`` on ``init_dir/dN``, status every ``interval``."""
    action = f'<action name="status" depth="*" interval="{interval:g}"/>'
    return _cluster_conf("".join(
        f'<service name="svc{i}"><script name="{rid}" file="{init_dir / rid}">{action}'
        "</script></service>" for i, rid in enumerate(resource_ids(n))))


@dataclass(frozen=True)
class CrmCounts:
    """What ``crm_mon --output-as=xml`` says about the DC and the resources."""

    dc: bool
    quorate: bool
    started: int
    active: int
    failed: int
    total: int


def parse_crm_mon(xml_text: str) -> CrmCounts:
    root = ET.fromstring(xml_text)
    dc_el = root.find("./summary/current_dc")
    dc = dc_el is not None and dc_el.get("present") == "true"
    quorate = dc and dc_el is not None and dc_el.get("with_quorum") == "true"
    started = active = failed = total = 0
    for res in root.iterfind(".//resources//resource"):
        total += 1
        started += res.get("role") == "Started" and res.get("active") == "true"
        active += res.get("active") == "true"
        failed += res.get("failed") == "true"
    return CrmCounts(dc, quorate, started, active, failed, total)


@dataclass(frozen=True)
class ProcStat:
    """One process's CPU so far, in clock ticks."""

    comm: str
    own: int  # utime + stime
    reaped: int  # cutime + cstime: every child it has waited for


def parse_stat(text: str) -> ProcStat:
    """A ``/proc/PID/stat`` line (the command name may hold spaces and parens)."""
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    # after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return ProcStat(comm, int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))


def cpu_ticks(snapshot: Mapping[int, ProcStat]) -> int:
    return sum(s.own + s.reaped for s in snapshot.values())


def by_command(before: Mapping[int, ProcStat], after: Mapping[int, ProcStat]) -> dict[str, int]:
    """Ticks per command name over the window, for processes alive at both ends
    (own and reaped children together): where the total went."""
    out: dict[str, int] = {}
    for pid, a in after.items():
        b = before.get(pid)
        if b is None or b.comm != a.comm:
            continue
        out[a.comm] = out.get(a.comm, 0) + (a.own + a.reaped) - (b.own + b.reaped)
    return out


def due_monitors(n: int, window: float, interval: float) -> float:
    return n * window / interval


def gaps_within(times: Mapping[str, Sequence[float]], t0: float, t1: float
                ) -> tuple[int, list[float]]:
    """(checks logged in [t0, t1], gaps between consecutive checks ending there)."""
    checks = sum(1 for ts in times.values() for t in ts if t0 <= t <= t1)
    gaps = [b - a for ts in times.values() for a, b in zip(ts, ts[1:], strict=False)
            if t0 <= b <= t1]
    return checks, gaps


@dataclass
class Run:
    """One repeat of one system at one N."""

    system: str
    n: int
    start_s: float
    window_s: float
    cpu_s: float
    stop_s: float
    interval: float
    checks: int | None = None  # monitors that really ran, where they can be counted
    gap_max: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)  # % of one core by command
    source: str = ""  # ours: the checkout's commit the daemon ran from (+dirty)
    uncounted: int = 0  # agent runs whose opener was gone before its namespace was read

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.window_s

    @property
    def ms_per_monitor(self) -> float:
        """CPU per monitor *due* in the window (what the interval promises)."""
        return 1000 * self.cpu_s / due_monitors(self.n, self.window_s, self.interval)

    @property
    def checks_share(self) -> float | None:
        """Checks that really ran per check due (1.0: the interval was kept)."""
        if self.checks is None:
            return None
        return self.checks / due_monitors(self.n, self.window_s, self.interval)

    @property
    def ms_per_check(self) -> float | None:
        """CPU per check that really ran, where they were counted."""
        return 1000 * self.cpu_s / self.checks if self.checks else None


def spread(values: Iterable[float]) -> tuple[float, float, float]:
    vals = sorted(values)
    if not vals:
        raise ValueError("no values")
    return vals[0], statistics.median(vals), vals[-1]


def fmt_spread(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "-"
    lo, mid, hi = spread(values)
    if len(values) == 1:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(ours: Sequence[float], peer: Sequence[float]) -> str:
    """Median over median, e.g. ``0.42x``; '-' when either side is missing."""
    if not ours or not peer:
        return "-"
    p = statistics.median(peer)
    return f"{statistics.median(ours) / p:.2f}x" if p > 0 else "-"


def table(runs: Sequence[Run]) -> str:
    """The side-by-side table: median (min-max) over repeats per N.

    "checks run" (ran / due) and "ms per check run" only where the checks
    were counted (our script resources log each status); elsewhere "-".
    """
    def of(system: str, n: int, attr: str) -> list[float]:
        values = (getattr(r, attr) for r in runs if r.system == system and r.n == n)
        return [v for v in values if v is not None]

    head = ("| N | system | CPU % of one core | ms per due monitor | checks run / due "
            "| ms per check run | CPU vs Pacemaker | start all, s | stop all, s | repeats |")
    lines = [head, "|" + "---|" * 10]
    for n in sorted({r.n for r in runs}):
        peer = of("pacemaker", n, "cpu_pct")
        for system in SYSTEMS:
            cpu = of(system, n, "cpu_pct")
            if not cpu:
                continue
            vs = "1" if system == "pacemaker" else ratio(cpu, peer)
            lines.append(
                f"| {n} | {system} | {fmt_spread(cpu)} | "
                f"{fmt_spread(of(system, n, 'ms_per_monitor'), 2)} | "
                f"{fmt_spread(of(system, n, 'checks_share'), 2)} | "
                f"{fmt_spread(of(system, n, 'ms_per_check'), 2)} | {vs} | "
                f"{fmt_spread(of(system, n, 'start_s'))} | "
                f"{fmt_spread(of(system, n, 'stop_s'))} | {len(cpu)} |")
    return "\n".join(lines)


def runs_from_json(text: str) -> list[Run]:
    """Runs as ``--json`` printed them (derived figures are recomputed)."""
    names = {f for f in Run.__dataclass_fields__}
    return [Run(**{k: v for k, v in d.items() if k in names}) for d in json.loads(text)]


# ============================================================ measurement

class Netns:
    """A network namespace of the benchmark's own, and every process in it.

    The processes are found by their ``/proc/PID/ns/net`` inode (no fork per
    sample); ``close()`` SIGKILLs them until none is left and deletes the
    namespace; mounts made in mount namespaces of these processes vanish
    with them.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.ino: int | None = None
        run(["ip", "netns", "add", name])
        try:
            self.ino = os.stat(f"/run/netns/{name}").st_ino
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        except BaseException:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            raise

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(f"{entry.path}/ns/net").st_ino == self.ino:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def snapshot(self) -> dict[int, ProcStat]:
        out = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    out[pid] = parse_stat(f.read())
            except OSError:
                continue  # exited meanwhile
        return out

    def kill_all(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in pids:  # reap the ones that are ours
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            if time.monotonic() > deadline:
                log.error("processes left in %s: %s", self.name, pids)
                return
            time.sleep(0.02)

    def close(self) -> None:
        if self.ino is None:
            return
        self.kill_all()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self.ino = None


def run(argv: Sequence[str], *, timeout: float = 60, input: str | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                       input=input, env=dict(env) if env is not None else None)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[-500:]}")
    return r


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``cond`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


FAN_EVENT = struct.Struct("IBBHQii")  # struct fanotify_event_metadata
FAN_CLASS_NOTIF, FAN_CLOEXEC, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD = 0, 1, 1, 0x20, -100


def fanotify_events(buf: bytes) -> list[tuple[int, int]]:
    """(fd, pid) of each event in a buffer read from a fanotify descriptor."""
    out, off = [], 0
    while off + FAN_EVENT.size <= len(buf):
        length, _vers, _res, _mlen, _mask, fd, pid = FAN_EVENT.unpack_from(buf, off)
        out.append((fd, pid))
        off += max(length, FAN_EVENT.size)
    return out


class OpenCounter:
    """Counts opens of one file per network namespace of the opening process.

    Heartbeat agents source ``ocf-shellfuncs`` once per run, so its opens from
    a system's namespace are the agent runs (here: Dummy monitors) that really
    happened there -- the same count for Pacemaker and for us, without
    touching the agent.  fanotify gives the opener's pid with each event (a
    new pid per run: runs are never merged); its namespace is looked up when
    the event is read, and an opener already gone by then is counted in
    ``gone``.  Unavailable (no fanotify): ``count`` returns None.
    """

    def __init__(self, path: Path) -> None:
        self.counts: dict[int, int] = {}
        self.gone = 0
        self._lock = threading.Lock()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64,
                                       ctypes.c_int, ctypes.c_char_p]
        self.fd = libc.fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, os.O_RDONLY | os.O_CLOEXEC)
        if self.fd >= 0 and libc.fanotify_mark(self.fd, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD,
                                               os.fsencode(path)) != 0:
            log.warning("fanotify_mark %s: %s", path, os.strerror(ctypes.get_errno()))
            os.close(self.fd)
            self.fd = -1
        if self.fd < 0:
            log.warning("agent runs will not be counted (no fanotify)")
            return
        threading.Thread(target=self._read, name="open-counter", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 64 * FAN_EVENT.size)
            except OSError:
                return  # closed
            for fd, pid in fanotify_events(buf):
                if fd >= 0:
                    os.close(fd)
                try:
                    ino = os.stat(f"/proc/{pid}/ns/net").st_ino
                except OSError:
                    with self._lock:
                        self.gone += 1
                    continue
                with self._lock:
                    self.counts[ino] = self.counts.get(ino, 0) + 1

    def count(self, ns: Netns) -> int | None:
        if self.fd < 0 or ns.ino is None:
            return None
        with self._lock:
            return self.counts.get(ns.ino, 0)


_counter: OpenCounter | None = None


def agent_runs(ns: Netns) -> int | None:
    """Heartbeat agent runs in ``ns`` so far (see OpenCounter), or None."""
    global _counter
    if _counter is None:
        _counter = OpenCounter(SHELLFUNCS)
    return _counter.count(ns)


def uncounted_runs() -> int:
    """Agent runs (any namespace) whose opener exited before it was placed."""
    return _counter.gone if _counter is not None else 0


def uptime() -> float:
    """CLOCK_BOOTTIME as the LSB script logs it (10 ms steps)."""
    return float(Path("/proc/uptime").read_text().split()[0])


def measure(ns: Netns, window: float) -> tuple[float, float, dict[str, float]]:
    """(CPU seconds, wall seconds, % of one core per command) over ``window``."""
    t0, before = time.monotonic(), ns.snapshot()
    time.sleep(window)  # the measured interval itself, not a wait for a condition
    t1, after = time.monotonic(), ns.snapshot()
    wall = t1 - t0
    ticks = cpu_ticks(after) - cpu_ticks(before)
    parts = {comm: 100 * t / TICK / wall for comm, t in by_command(before, after).items()
             if t > 0}
    return ticks / TICK, wall, parts


# ------------------------------------------------------------- Pacemaker

def missing_tools() -> list[str]:
    missing = [t for t in PACEMAKER_TOOLS if shutil.which(t, path=f"{SBIN}:/usr/bin") is None]
    if not (HEARTBEAT / "Dummy").is_file():
        missing.append(str(HEARTBEAT / "Dummy"))
    return missing


def ensure_pacemaker() -> None:
    """Install Debian's Pacemaker if it is missing (this benchmark's job only)."""
    if not missing_tools():
        return
    log.warning("installing %s with apt-get (for the Pacemaker side)", " ".join(PACKAGES))
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                   check=True, stdin=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if missing_tools():
        raise RuntimeError(f"still missing after apt-get: {missing_tools()}")


class PacemakerNode:
    """One Pacemaker node in a namespace of its own (see the module docstring)."""

    def __init__(self, tag: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"vsp-pcmk-{tag}-"))
        self.ns: Netns | None = None
        self.holder: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tag = tag

    def __enter__(self) -> PacemakerNode:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *argv]

    def tool(self, argv: Sequence[str], *, timeout: float = 120,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(self.nsenter([f"{SBIN}/{argv[0]}", *argv[1:]]), timeout=timeout,
                   input=input)

    def setup(self) -> None:
        d = self.dir
        d.chmod(0o755)  # Pacemaker's daemons run as hacluster and write their log here
        for sub in ("run", "state"):
            (d / sub).mkdir()
        varlib = d / "var-lib-pacemaker"
        run(["cp", "-a", "/var/lib/pacemaker", str(varlib)])
        for sub in ("cib", "pengine"):  # a fresh, empty cluster whatever the host had
            for f in (varlib / sub).glob("*"):
                f.unlink()
        (d / "corosync.conf").write_text(corosync_conf(d / "state", d / "corosync.log"))
        self.ns = Netns(f"vsp{os.getpid()}{self.tag}")
        # ip netns exec gives a private mount namespace; sleep keeps it.
        self.holder = subprocess.Popen(self.ns.exec_argv(["sleep", "infinity"]),
                                       stdin=subprocess.DEVNULL)
        self.procs.append(self.holder)
        holder = self.holder
        wait_for(lambda: _comm(holder.pid) == "sleep", 10, "namespace holder", 0.02)
        run(self.nsenter(["mount", "--bind", str(d / "run"), "/run"]))
        run(self.nsenter(["mount", "--bind", str(varlib), "/var/lib/pacemaker"]))
        run(self.nsenter(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", "/dev/shm"]))
        self.spawn(["corosync", "-f", "-c", str(d / "corosync.conf")], d / "corosync.out")
        wait_for(self.quorate, 30, "corosync quorate", 0.1)
        self.spawn([f"{SBIN}/pacemakerd", "-f"], d / "pacemakerd.out",
                   {"PCMK_logfile": str(d / "pacemaker.log"), "PCMK_logfacility": "none"})
        wait_for(lambda: (c := self.counts()) is not None and c.dc and c.quorate,
                 DC_TIMEOUT, "Pacemaker's DC", 0.5)
        self.tool(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled",
                   "--update", "false"])

    def spawn(self, argv: Sequence[str], out: Path, env: Mapping[str, str] | None = None
              ) -> None:
        with open(out, "ab") as f:
            self.procs.append(subprocess.Popen(
                self.nsenter(argv), stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}))

    def quorate(self) -> bool:
        r = subprocess.run(self.nsenter(["corosync-quorumtool", "-s"]), capture_output=True,
                           text=True, timeout=10)
        return "Quorate:          Yes" in r.stdout

    def counts(self) -> CrmCounts | None:
        r = subprocess.run(self.nsenter([f"{SBIN}/crm_mon", "-1", "--output-as=xml"]),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return None
        try:
            return parse_crm_mon(r.stdout)
        except ET.ParseError:
            return None

    def set_all(self, n: int, interval: float, role: str, timeout: float) -> float:
        """Replace the resources with every target-role ``role``; seconds until done."""
        t0 = time.monotonic()
        self.tool(["cibadmin", "--replace", "--scope", "resources", "--xml-pipe"],
                  input=cib_resources(n, interval, role))

        def done() -> bool:
            c = self.counts()
            if c is None:
                return False
            if c.failed:
                raise RuntimeError(f"{c.failed} resources failed (see {self.dir})")
            return c.started == n if role == "Started" else c.active == 0

        wait_for(done, timeout, f"{n} resources {role}", 0.5)
        return time.monotonic() - t0

    def close(self) -> None:
        if self.ns is not None:
            self.ns.close()
            self.ns = None
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.kill()
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def bench_pacemaker(n: int, interval: float, window: float, repeats: int,
                    timeout: float) -> list[Run]:
    runs = []
    with PacemakerNode(f"p{n}") as node:
        assert node.ns is not None
        # all N exist, stopped; each repeat starts them all, measures, stops them all
        node.set_all(n, interval, "Stopped", timeout)
        for k in range(repeats):
            start = node.set_all(n, interval, "Started", timeout)
            runs0, gone0 = agent_runs(node.ns), uncounted_runs()
            cpu, wall, parts = measure(node.ns, window)
            runs1, gone1 = agent_runs(node.ns), uncounted_runs()
            stop = node.set_all(n, interval, "Stopped", timeout)
            checks = runs1 - runs0 if runs0 is not None and runs1 is not None else None
            r = Run("pacemaker", n, start, wall, cpu, stop, interval, checks,
                    breakdown=parts, uncounted=gone1 - gone0)
            report(r, k)
            runs.append(r)
    return runs


# ------------------------------------------------------------------- ours

class OurDaemon:
    """Our daemon in a namespace of its own, with everything in a temporary dir."""

    def __init__(self, tag: str, conf_text: Callable[[Path], str],
                 agent_dirs: Sequence[str] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"vsp-ours-{tag}-"))
        self.tag = tag
        (self.dir / "state").mkdir()
        self.conf = self.dir / "cluster.conf"
        self.conf.write_text(conf_text(self.dir))
        self.env = {**os.environ, "RGMANAGER_SOCKET": str(self.dir / "rgmanager.sock"),
                    "RGMANAGER_LOCK": str(self.dir / "rgmanager.pid"),
                    "HA_RSCTMP": str(self.dir / "state"),
                    "RGMANAGER_CACHE_DIR": str(self.dir / "cache")}
        self.agent_dirs = list(agent_dirs)
        self.ns: Netns | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def started(self, n: int) -> bool:
        r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "--json"],
                           env=self.env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return False
        states = [s["state"] for s in json.loads(r.stdout)["services"]]
        return len(states) == n and all(s == "started" for s in states)

    def start(self, n: int, timeout: float) -> float:
        """Launch the daemon; seconds until clustat shows all N started."""
        self.ns = Netns(f"vsp{os.getpid()}{self.tag}")
        daemon = str(Path(sys.executable).with_name("rgmanager"))
        argv = [daemon, "-c", str(self.conf)]
        for d in self.agent_dirs:
            argv += ["--agent-dir", d]
        t0 = time.monotonic()
        with open(self.dir / "daemon.log", "ab") as err:
            # ip netns exec execs the daemon: the Popen pid is the daemon's.
            self.proc = subprocess.Popen(self.ns.exec_argv(argv), env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}: "
                                   + (self.dir / "daemon.log").read_text()[-2000:])
            return self.started(n)

        wait_for(up, timeout, f"all {n} services started", 0.5)
        return time.monotonic() - t0

    def stop(self, timeout: float) -> float:
        """SIGTERM; seconds until the daemon has stopped every service and exited."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        took = time.monotonic() - t0
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited {self.proc.returncode}")
        return took

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.ns is not None:
            self.ns.close()
            self.ns = None

    def cleanup(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def source_revision() -> str:
    """The commit our daemon runs from, ``+dirty`` if rgmanager/ has changes on top:
    the checkout may move between repeats, and a figure should say what it measured."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "-C", str(repo), "status", "--porcelain", "--", "rgmanager"]
                    ).stdout.strip()
    except (OSError, RuntimeError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_lsb(root: Path, n: int) -> Path:
    """The trivial LSB script, linked once per resource; returns the links' dir."""
    marks = root / "marks"
    marks.mkdir()
    lsb = root / "lsb"
    lsb.write_text(LSB.format(dir=marks))
    lsb.chmod(0o755)
    init = root / "init.d"
    init.mkdir()
    for rid in resource_ids(n):
        (init / rid).symlink_to(lsb)
    return init


def check_times(marks: Path) -> dict[str, list[float]]:
    return {p.stem: [float(x) for x in p.read_text().split()] for p in marks.glob("*.log")}


def bench_ours(system: str, n: int, interval: float, window: float, repeats: int,
               timeout: float) -> list[Run]:
    runs = []
    for k in range(repeats):
        if system == "ours-dummy":
            daemon = OurDaemon(f"d{n}", lambda _d: ours_dummy_conf(n, interval),
                               [str(HEARTBEAT)])
        else:
            daemon = OurDaemon(f"s{n}", lambda d: ours_script_conf(n, interval,
                                                                    write_lsb(d, n)))
        try:
            source = source_revision()
            start = daemon.start(n, timeout)
            assert daemon.ns is not None
            u0, runs0, gone0 = uptime(), agent_runs(daemon.ns), uncounted_runs()
            cpu, wall, parts = measure(daemon.ns, window)
            u1, runs1, gone1 = uptime(), agent_runs(daemon.ns), uncounted_runs()
            stop = daemon.stop(timeout)
            checks = runs1 - runs0 if runs0 is not None and runs1 is not None else None
            gap_max = None
            if system == "ours-script":
                checks, gaps = gaps_within(check_times(daemon.dir / "marks"), u0, u1)
                gap_max = max(gaps, default=None)
            r = Run(system, n, start, wall, cpu, stop, interval, checks, gap_max, parts, source,
                    gone1 - gone0)
            report(r, k)
            runs.append(r)
        finally:
            daemon.cleanup()
    return runs


# -------------------------------------------------------------------- main

def report(r: Run, k: int) -> None:
    top = ", ".join(f"{c} {p:.1f}" for c, p in
                    sorted(r.breakdown.items(), key=lambda kv: -kv[1])[:6])
    extra = ""
    if r.checks is not None:
        due = due_monitors(r.n, r.window_s, r.interval)
        extra = (f"; checks run {r.checks} of {due:.0f} due ({r.ms_per_check or 0:.2f} ms "
                 "per check run)")
        if r.uncounted:
            extra += f", {r.uncounted} more whose process was gone before it was placed"
        if r.gap_max is not None:
            extra += f", longest gap {r.gap_max:.1f} s"
    at = f" [{r.source}]" if r.source else ""
    print(f"  {r.system}{at} N={r.n} #{k + 1}: start {r.start_s:.1f} s, CPU {r.cpu_pct:.1f} % "
          f"({r.ms_per_monitor:.2f} ms/monitor), stop {r.stop_s:.1f} s{extra}; "
          f"% by process: {top}", flush=True)


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts)"
    for tool in ("ip", "nsenter", "apt-get"):
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
            return f"{tool} not found"
    return None


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100,1000", help="resource counts (default 100,1000)")
    ap.add_argument("--interval", type=float, default=10.0, help="monitor interval, s")
    ap.add_argument("--window", type=float, default=60.0, help="steady window, s")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"subset of {','.join(SYSTEMS)}")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="give up a start or stop after this many seconds")
    ap.add_argument("--json", action="store_true", help="also print every run as JSON")
    ap.add_argument("--table-from", metavar="FILE",
                    help="print the table of a saved run (its --json line) and exit")
    args = ap.parse_args(argv)
    if args.table_from:
        lines = Path(args.table_from).read_text().splitlines()
        print(table(runs_from_json(next(ln for ln in reversed(lines) if ln.startswith("[")))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sizes = parse_n(args.n)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}")
    # SIGTERM unwinds like Ctrl-C, so every namespace and process is torn down.
    signal.signal(signal.SIGTERM, _interrupted)
    reason = why_not()
    if reason:
        print(f"cannot run here: {reason}", file=sys.stderr)
        return 2
    if "pacemaker" in systems or "ours-dummy" in systems:
        ensure_pacemaker()
    runs: list[Run] = []
    for n in sizes:
        for system in systems:
            print(f"{system}, N={n}, monitor every {args.interval:g} s, "
                  f"window {args.window:g} s", flush=True)
            if system == "pacemaker":
                runs += bench_pacemaker(n, args.interval, args.window, args.repeats,
                                        args.timeout)
            else:
                runs += bench_ours(system, n, args.interval, args.window, args.repeats,
                                   args.timeout)
    print()
    print(table(runs))
    revisions = sorted({r.source for r in runs if r.source})
    if revisions:
        print(f"our daemon ran from: {', '.join(revisions)}")
    if args.json:
        print(json.dumps([{**asdict(r), "cpu_pct": r.cpu_pct,
                           "ms_per_monitor": r.ms_per_monitor,
                           "ms_per_check": r.ms_per_check} for r in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
