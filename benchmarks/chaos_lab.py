"""The chaos harness: rgmanager-py on a corosync namespace lab, and its faults.

``ChaosLab`` wraps ``tests.cluster_lab.CorosyncLab`` (namespaces, bridge,
corosync per node) and adds what a chaos run needs:

- one rgmanager (``--backend corosync``) per node, its control socket and log
  in the run's directory, so clustat/clusvcadm reach it from the host;
- a cluster.conf (``cluster_conf``) with five services that exercise the
  placement rules (ordered, unordered and restricted domains, ``depend``, an
  exclusive service, an independent subtree, recovery restart and relocate)
  and every node fenced by ``benchmarks/chaos_fence.py`` (fence_netns, the
  namespace power switch, plus a record of who was switched off when);
- an LSB script (``lsb_script``) that every service runs: it appends
  ``start|stop|stopfail SERVICE NODE TIME`` to one event log shared by all
  nodes (O_APPEND, CLOCK_REALTIME in ns) and keeps its "running" marker in
  the node's private /run, which vanishes when the node is switched off;
  files in ``faults/`` make it hang in ``status`` or fail its ``stop``;
- the faults themselves (kill a node, kill rgmanager or corosync only,
  SIGSTOP/SIGCONT rgmanager, cut a link, partition, clusvcadm requests,
  reload) and the repair a real machine would get (a rebooted node comes back).

Every fault and repair is appended to ``self.journal`` as a line for the
report; the checker's inputs (power log, node and service windows) are kept
on the object. Nothing here judges: ``benchmarks.chaos_check`` does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.chaos_check import Fault, ServiceSpec, Window
from tests.cluster_lab import PYTHON, REPO, CorosyncLab, LabError, wait_for

log = logging.getLogger(__name__)

FENCE_AGENT = REPO / "benchmarks" / "chaos_fence.py"
#: States after which nothing moves by itself.
SETTLED = frozenset({"started", "stopped", "disabled", "failed"})
STATUS_TIMEOUT = 3  # seconds a status check may take before it counts as failed
STATUS_INTERVAL = 2

LSB = """#!/bin/sh
# Chaos test service: records what it really does in the shared event log.
events={events}
faults={faults}
svc="$OCF_RESKEY_name"
[ -n "$svc" ] || svc=$(basename "$0" | sed 's/^lsb-//')
node=$(cat /run/chaos-node 2>/dev/null || echo unknown)
mark=/run/chaos/$svc.on
note() {{ printf '%s %s %s %s\\n' "$1" "$svc" "$node" "$(date +%s.%N)" >> "$events"; }}
case "$1" in
start)
    mkdir -p /run/chaos
    note start
    touch "$mark" ;;
stop)
    if [ -e "$faults/$svc.failstop" ]; then note stopfail; exit 1; fi
    if [ -e "$mark" ]; then rm -f "$mark"; note stop; fi ;;
status)
    if [ -e "$faults/$svc.hang" ]; then sleep 600; fi
    [ -e "$mark" ] || exit 3 ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Service:
    """One configured chaos service (and what the checker is told about it)."""

    name: str
    domain: str | None
    eligible: tuple[str, ...]
    attrs: str = ""
    exclusive: bool = False
    subtree: str | None = None  # name of an independent child script

    def specs(self) -> list[ServiceSpec]:
        out = [ServiceSpec(self.name, eligible=self.eligible, exclusive=self.exclusive)]
        if self.subtree:
            out.append(ServiceSpec(self.subtree, eligible=self.eligible))
        return out


def services(n: int) -> list[Service]:
    """The five services on an n-node cluster: node n is kept for the exclusive
    one, the others live on nodes 1..n-1 (so an exclusive service never blocks a
    restricted one, and the checker's rule for it stays simple)."""
    names = [f"node{i}" for i in range(1, n + 1)]
    rest = tuple(names[:-1])
    return [
        Service("web", "prefer", rest, 'recovery="relocate"'),
        Service("db", "rest", rest, 'recovery="restart"'),
        Service("app", "pair", tuple(names[:2]), 'recovery="relocate" depend="service:db"'),
        Service("tree", "rest", rest, 'recovery="restart"', subtree="tree-sub"),
        Service("solo", "last", (names[-1],), 'recovery="restart" exclusive="1"',
                exclusive=True),
    ]


def domains_xml(n: int) -> str:
    names = [f"node{i}" for i in range(1, n + 1)]
    rest = names[:-1]
    prefer = "".join(f'<failoverdomainnode name="{m}" priority="{k}"/>'
                     for k, m in enumerate(rest, 1))
    unordered = "".join(f'<failoverdomainnode name="{m}"/>' for m in rest)
    pair = "".join(f'<failoverdomainnode name="{m}"/>' for m in names[:2])
    return ("<failoverdomains>"
            f'<failoverdomain name="prefer" ordered="1" restricted="1">{prefer}</failoverdomain>'
            f'<failoverdomain name="rest" restricted="1">{unordered}</failoverdomain>'
            f'<failoverdomain name="pair" restricted="1">{pair}</failoverdomain>'
            f'<failoverdomain name="last" restricted="1"><failoverdomainnode name="{names[-1]}"/>'
            "</failoverdomain></failoverdomains>")


def script_xml(name: str, lsb: Path, extra: str = "", inner: str = "") -> str:
    link = lsb.parent / f"lsb-{name}"
    if not link.exists():
        link.symlink_to(lsb)
    return (f'<script name="{name}" file="{link}" __enforce_timeouts="1" {extra}>'
            f'<action name="status" depth="*" interval="{STATUS_INTERVAL}" '
            f'timeout="{STATUS_TIMEOUT}"/>{inner}</script>')


def cluster_conf(n: int, version: int, lsb: Path, power_log: Path,
                 netns: dict[str, str], name: str = "rgmlab") -> str:
    """The chaos cluster.conf: every node fenced by the namespace power switch."""
    nodes = "".join(
        f'<clusternode name="{node}" nodeid="{i}"><fence><method name="power">'
        f'<device name="switch" port="{netns[node]}"/></method></fence></clusternode>'
        for i, node in ((i, f"node{i}") for i in range(1, n + 1)))
    body = []
    for s in services(n):
        inner = ""
        if s.subtree:
            inner = script_xml(s.subtree, lsb, '__independent_subtree="1"')
        dom = f' domain="{s.domain}"' if s.domain else ""
        body.append(f'<service name="{s.name}"{dom} {s.attrs}>'
                    f"{script_xml(s.name, lsb, inner=inner)}</service>")
    return (f'<?xml version="1.0"?>\n<cluster name="{name}" config_version="{version}">\n'
            f"<clusternodes>{nodes}</clusternodes>\n"
            f'<fencedevices><fencedevice name="switch" agent="{FENCE_AGENT}" '
            f'logfile="{power_log}"/></fencedevices>\n'
            f'<rm status_poll_interval="1">{domains_xml(n)}\n' + "\n".join(body) +
            "\n</rm>\n</cluster>\n")


class ChaosLab:
    """n corosync nodes with rgmanager-py and the chaos services (see module doc)."""

    def __init__(self, n: int = 3, token: int = 1000) -> None:
        self.n = n
        self.lab = CorosyncLab(n, token=token, show_netns=True)
        self.dir = self.lab.dir / "chaos"
        self.events = self.dir / "events.log"
        self.power_log = self.dir / "power.log"
        self.faults_dir = self.dir / "faults"
        self.conf = self.dir / "cluster.conf"
        self.lsb = self.dir / "chaos-lsb"
        self.version = 1
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.daemon_starts: dict[str, int] = {}
        self.stopped: set[str] = set()  # rgmanager under SIGSTOP
        self.node_windows: list[Window] = []
        self.service_windows: list[Window] = []
        self.faults: list[Fault] = []
        self.journal: list[str] = []
        self.t0 = time.time()

    # ------------------------------------------------------------- lifecycle

    @property
    def names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.n + 1)]

    def specs(self) -> list[ServiceSpec]:
        return [spec for s in services(self.n) for spec in s.specs()]

    def __enter__(self) -> ChaosLab:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        try:
            self.lab.setup(start=True)
            self.faults_dir.mkdir(parents=True)
            self.events.touch()
            self.power_log.touch()
            self.lsb.write_text(LSB.format(events=self.events, faults=self.faults_dir))
            self.lsb.chmod(0o755)
            self.write_conf()
            for node in self.names:
                self.mark_node(node)
                self.start_daemon(node)
            self.t0 = time.time()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for proc in self.daemons.values():
            with contextlib.suppress(Exception):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
        self.lab.close()

    def leftovers(self) -> list[str]:
        """Namespaces or processes of this run still there (after ``close``)."""
        left = []
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        left += [f"netns {line.split()[0]}" for line in r.stdout.splitlines()
                 if line.startswith(self.lab.prefix)]
        needle = str(self.lab.dir).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle in f.read():
                        left.append(f"process {pid}")
        if self.lab.dir.exists():
            left.append(f"directory {self.lab.dir}")
        return left

    def write_conf(self) -> None:
        netns = {node: self.lab.node(node).netns for node in self.names}
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(cluster_conf(self.n, self.version, self.lsb, self.power_log, netns))
        tmp.replace(self.conf)

    def mark_node(self, node: str) -> None:
        """Tell the LSB script which node it runs on (in the node's private /run)."""
        (self.lab.node(node).dir / "run" / "chaos-node").write_text(node)

    def socket(self, node: str) -> Path:
        return self.dir / f"{node}.sock"

    def daemon_log(self, node: str) -> Path:
        return self.dir / f"{node}.rgmanager.{self.daemon_starts.get(node, 0)}.log"

    def start_daemon(self, node: str) -> None:
        self.daemon_starts[node] = self.daemon_starts.get(node, 0) + 1
        state = self.dir / f"{node}.state"
        state.mkdir(exist_ok=True)
        with open(self.daemon_log(node), "wb") as out:
            self.daemons[node] = self.lab.popen(node, [
                PYTHON, "-m", "rgmanager.cli.daemon_main", "-c", str(self.conf),
                "--backend", "corosync", "--node", node, "--socket", str(self.socket(node)),
                "--lock-file", str(self.dir / f"{node}.pid")],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "HA_RSCTMP": str(state),
                     "RGMANAGER_CACHE_DIR": str(self.dir / f"{node}.cache")})

    # ----------------------------------------------------------------- state

    def holder_up(self, node: str) -> bool:
        h = self.lab.node(node).holder
        return h is not None and h.poll() is None

    def corosync_up(self, node: str) -> bool:
        c = self.lab.node(node).corosync
        return c is not None and c.poll() is None

    def daemon_up(self, node: str) -> bool:
        d = self.daemons.get(node)
        return d is not None and d.poll() is None

    def status(self, node: str, timeout: float = 10) -> dict[str, Any]:
        """clustat --json against a node's daemon ({} if it does not answer)."""
        if not self.daemon_up(node) or node in self.stopped:
            return {}
        try:
            r = subprocess.run([PYTHON, "-m", "rgmanager.cli.clustat", "--json"], cwd=REPO,
                               capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, "RGMANAGER_SOCKET": str(self.socket(node)),
                                    "PYTHONPATH": str(REPO)})
        except subprocess.TimeoutExpired:
            return {}
        if r.returncode not in (0, 1) or not r.stdout.strip():
            return {}
        with contextlib.suppress(ValueError):
            view: dict[str, Any] = json.loads(r.stdout)
            return view
        return {}

    @staticmethod
    def table(view: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
        return {s["name"]: (s["state"] + ("/frozen" if s.get("frozen") else ""), s["owner"])
                for s in view.get("services", [])}

    def clusvcadm(self, node: str, *args: str, timeout: float = 60) -> tuple[int, str]:
        """An administrator's request. clusvcadm is told to give up a little
        before the harness would, so an unanswered request is a result (its
        exit code and message, in the journal), never a crash of the run."""
        try:
            r = subprocess.run([PYTHON, "-m", "rgmanager.cli.clusvcadm", "--timeout",
                                str(max(1, int(timeout) - 10)), *args], cwd=REPO,
                               capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, "RGMANAGER_SOCKET": str(self.socket(node)),
                                    "PYTHONPATH": str(REPO)})
        except subprocess.TimeoutExpired:
            self.note(f"clusvcadm {' '.join(args)} on {node}: no answer within {timeout:.0f} s")
            return -1, "timeout"
        out = (r.stdout + r.stderr).strip()
        self.note(f"clusvcadm {' '.join(args)} on {node}: rc={r.returncode} {out[:120]}")
        return r.returncode, out

    def note(self, text: str) -> None:
        line = f"{time.time() - self.t0:9.3f} {text}"
        self.journal.append(line)
        log.info("%s", line)

    def event_size(self) -> int:
        return self.events.stat().st_size

    # ---------------------------------------------------------------- faults

    def fault(self, kind: str, nodes: Sequence[str] = (), services: Sequence[str] = (),
              detail: str = "") -> Fault:
        f = Fault(kind, time.time(), tuple(nodes), tuple(services), detail)
        self.faults.append(f)
        self.note(f"FAULT {kind} nodes={list(nodes)} services={list(services)} {detail}")
        return f

    def crash(self, node: str) -> None:
        """Switch a whole node off (SIGKILL everything in it)."""
        self.lab.kill_node(node)
        self.record_power("crash", node)

    def record_power(self, how: str, node: str) -> None:
        fd = os.open(self.power_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{how} {node} {time.time():.9f}\n".encode())
        finally:
            os.close(fd)

    def kill_rgmanager(self, node: str) -> None:
        proc = self.daemons[node]
        proc.kill()
        proc.wait(timeout=10)

    def kill_corosync(self, node: str) -> None:
        self.lab.kill_corosync(node)

    def sigstop(self, node: str) -> None:
        self.daemons[node].send_signal(signal.SIGSTOP)
        self.stopped.add(node)

    def sigcont(self, node: str) -> None:
        self.stopped.discard(node)
        if self.daemon_up(node):
            self.daemons[node].send_signal(signal.SIGCONT)

    def cut(self, node: str) -> None:
        self.lab.cut(node)

    def heal(self, node: str) -> None:
        self.lab.heal(node)

    def partition(self, minority: Sequence[str]) -> None:
        """Move the minority's links onto a second bridge: they still see each
        other, not the rest."""
        ns = self.lab.bridge_ns
        subprocess.run(["ip", "-n", ns, "link", "add", "br1", "type", "bridge"],
                       capture_output=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "br1", "up"], capture_output=True)
        for node in minority:
            self._ip(ns, "link", "set", self.lab.node(node).veth, "master", "br1")

    def unpartition(self, minority: Sequence[str]) -> None:
        for node in minority:
            self._ip(self.lab.bridge_ns, "link", "set", self.lab.node(node).veth,
                     "master", "br0")

    @staticmethod
    def _ip(ns: str, *args: str) -> None:
        r = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"ip -n {ns} {' '.join(args)}: {r.stderr.strip()}")

    def set_fault_file(self, service: str, what: str, on: bool) -> None:
        path = self.faults_dir / f"{service}.{what}"
        if on:
            path.touch()
        else:
            path.unlink(missing_ok=True)

    def reload(self, node: str) -> None:
        """A higher config_version on every node's disk, SIGHUP to one rgmanager."""
        self.version += 1
        self.write_conf()
        if self.daemon_up(node) and node not in self.stopped:
            self.daemons[node].send_signal(signal.SIGHUP)

    # ---------------------------------------------------------------- repair

    def repair(self, node: str) -> str:
        """Bring a node back as a rebooted machine would: whatever of it is dead
        (the whole node, corosync, rgmanager) is started again. Says what it did."""
        did = ""
        if node in self.stopped:
            self.sigcont(node)
            did += "sigcont "
        if not self.holder_up(node):
            # fenced or crashed: reboot the whole node; what ran on it is gone
            if self.daemon_up(node):
                self.daemons[node].kill()
                self.daemons[node].wait(timeout=10)
            self.lab.start_node(node)
            self.mark_node(node)
            self.start_daemon(node)
            return did + "reboot"
        if not self.corosync_up(node):
            self.lab.start_corosync(node)
            did += "corosync "
        if not self.daemon_up(node):
            self.start_daemon(node)
            did += "rgmanager"
        return did.strip()

    def needs_repair(self, node: str) -> bool:
        return (node in self.stopped or not self.holder_up(node)
                or not self.corosync_up(node) or not self.daemon_up(node))

    # ----------------------------------------------------------------- quiet

    def member_of_all(self, node: str, views: dict[str, dict[str, Any]]) -> bool:
        return all(any(m["name"] == node and m["rgmanager"] for m in v.get("members", []))
                   for v in views.values())

    def quiet(self, timeout: float = 120, calm: float = 1.5
              ) -> tuple[float, dict[str, dict[str, tuple[str, str | None]]]] | None:
        """Wait for a quiet point: every node answers with a current table, sees every
        node as an rgmanager member, no service in a transitional state, and the event
        log unchanged for ``calm`` s. Then every node's table, re-read (up to 5 s)
        while they differ. None if the cluster did not settle in ``timeout``."""
        deadline = time.monotonic() + timeout
        last_size, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.event_size()
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            views = {node: self.status(node) for node in self.names}
            ok = all(v and not v.get("stale") for v in views.values()) and all(
                self.member_of_all(node, views) for node in self.names) and all(
                s["state"] in SETTLED for v in views.values() for s in v["services"])
            if ok and time.monotonic() - last_change >= calm:
                t = time.time()
                tables = {node: self.table(v) for node, v in views.items()}
                agree_by = time.monotonic() + 5
                while len({json.dumps(tb, sort_keys=True) for tb in tables.values()}) > 1 \
                        and time.monotonic() < agree_by:
                    time.sleep(0.5)
                    tables = {node: self.table(self.status(node)) for node in self.names}
                return t, tables
            time.sleep(0.3)
        return None

    def wait_member(self, node: str, timeout: float = 60) -> float:
        """Wait until every other live node sees ``node`` as an rgmanager member."""
        others = [n for n in self.names if n != node]

        def seen() -> bool:
            views = {n: self.status(n) for n in others}
            return all(views.values()) and self.member_of_all(node, views)

        wait_for(seen, timeout, f"{node} back as a member", interval=0.3)
        return time.time()

    def traceback_logs(self) -> list[str]:
        return [p.name for p in sorted(self.dir.glob("*.rgmanager.*.log"))
                if "Traceback" in p.read_text(errors="replace")]
