"""Pacemaker 2.1 on the project's corosync namespace lab: the benchmark's peer.

The failover benchmark compares rgmanager-py with Pacemaker on the same
three namespace nodes, the same totem settings and the same fence agent.
This module builds and drives the Pacemaker side; ``benchmarks.failover``
times it.

Per node, on top of what ``tests.cluster_lab.CorosyncLab`` gives (a network
namespace, a holder process whose mount namespace has a private ``/run`` and
``/dev/shm``, corosync):

- a copy of the host's ``/var/lib/pacemaker`` (``cp -a`` keeps the
  hacluster:haclient ownership) bind-mounted over ``/var/lib/pacemaker``, so
  each node has its own CIB, kept across a node's restarts as on disk;
- ``/usr/sbin`` overlaid (read-only overlayfs, inside the node's mount
  namespace only) with a directory holding ``fence_netns``: Pacemaker looks
  for stonith agents in ``/usr/sbin`` and the host's ``/usr/sbin`` is never
  touched. That ``fence_netns`` is a small wrapper that runs the project's
  test agent (``tests/fence_agents/fence_netns``) and appends when it ran to
  a log, because Pacemaker's own logs only carry whole seconds;
- in its private ``/run/netns``, a bind of every lab node's network
  namespace (``share_namespaces``): ``fence_netns`` finds its target with
  ``ip netns``, which reads ``/run/netns``, empty in a private ``/run``;
- ``pacemakerd -f`` with its log in the node's directory.

The cluster gets ``stonith-enabled=true``, one ``fence_netns`` stonith
device per node (``netns=`` that node's namespace, ``pcmk_host_list`` its
name: the agent's ``monitor`` needs a namespace, so one device cannot serve
every node), one ``ocf:pacemaker:Dummy`` resource ``d1`` and a resource
stickiness so a returning node does not pull ``d1`` back.

Everything is torn down by ``close()`` (the lab's: every process of every
namespace is killed, mounts vanish with their mount namespaces, the
namespaces and the directory are deleted), also on errors and Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster_lab import REPO, CorosyncLab, LabError, probe, wait_for

log = logging.getLogger(__name__)

FENCE_AGENT = REPO / "tests" / "fence_agents" / "fence_netns"
RESOURCE = "d1"
PACKAGES = ("pacemaker", "pacemaker-cli-utils")
PACEMAKER_TOOLS = ("pacemakerd", "crm_resource", "crm_mon", "cibadmin", "crm_attribute")
SBIN = "/usr/sbin"
# Pacemaker waits dc-deadtime (20 s) before electing a DC on a fresh cluster.
DC_TIMEOUT = 90.0
SETTLE_TIMEOUT = 120.0


# ----------------------------------------------------------------- rendering

def fence_wrapper(agent: Path, log_path: Path) -> str:
    """The ``fence_netns`` Pacemaker runs: the test agent, timed to the ns.

    It logs ``start end rc action target`` (wall-clock seconds) per call;
    the options themselves are never logged (an agent may get a password).
    """
    return "\n".join([
        "#!/bin/sh",
        "# Written by benchmarks/pacemaker_lab.py: times the test fence agent.",
        "input=$(cat)",
        "start=$(date +%s.%N)",
        f'printf "%s\\n" "$input" | {shlex.quote(str(agent))} "$@"',
        "rc=$?",
        "end=$(date +%s.%N)",
        "action=$(printf '%s\\n' \"$input\" | sed -n 's/^action=//p' | tail -n 1)",
        "target=$(printf '%s\\n' \"$input\" | sed -n 's/^\\(port\\|plug\\|nodename\\)=//p'"
        " | tail -n 1)",
        f'echo "$start $end $rc ${{action:-reboot}} $target" >> {shlex.quote(str(log_path))}',
        "exit $rc",
        "",
    ])


def _nvpairs(owner: str, values: Mapping[str, str]) -> str:
    pairs = "".join(f'<nvpair id="{owner}-{name}" name="{name}" value="{value}"/>'
                    for name, value in values.items())
    return f'<instance_attributes id="{owner}-ia">{pairs}</instance_attributes>'


def resources_xml(nodes: Mapping[str, str], resource: str = RESOURCE) -> str:
    """The CIB ``<resources>``: a fence device per node, then the Dummy.

    ``nodes`` maps a Pacemaker node name to its network namespace.
    """
    parts = ["<resources>"]
    for name, netns in sorted(nodes.items()):
        dev = f"st-{name}"
        parts.append(
            f'<primitive id="{dev}" class="stonith" type="fence_netns">'
            + _nvpairs(dev, {"netns": netns, "pcmk_host_list": name})
            + f'<operations><op id="{dev}-monitor" name="monitor" interval="60s"/>'
            "</operations></primitive>")
    parts.append(
        f'<primitive id="{resource}" class="ocf" provider="pacemaker" type="Dummy">'
        f'<operations><op id="{resource}-monitor" name="monitor" interval="10s"/>'
        "</operations></primitive>")
    parts.append("</resources>")
    return "".join(parts)


# ------------------------------------------------------------------ parsing

_SYSLOG_TIME = re.compile(r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) "
                          r"(?P<hms>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?")


def syslog_time(line: str, year: int) -> float | None:
    """Wall-clock seconds of a ``Mon DD HH:MM:SS[.fff]`` prefix (local time)."""
    m = _SYSLOG_TIME.match(line)
    if m is None:
        return None
    stamp = dt.datetime.strptime(f"{year} {m['mon']} {m['day']} {m['hms']}",
                                 "%Y %b %d %H:%M:%S")
    frac = float(f"0.{m['frac']}") if m["frac"] else 0.0
    return stamp.timestamp() + frac


def membership_times(text: str, year: int) -> list[float]:
    """When corosync (hires timestamps) logged a new membership, in order."""
    times = []
    for line in text.splitlines():
        if "A new membership" in line and "was formed" in line:
            t = syslog_time(line, year)
            if t is not None:
                times.append(t)
    return times


@dataclass(frozen=True)
class FenceCall:
    """One run of the fence agent, as the wrapper logged it."""

    start: float
    end: float
    rc: int
    action: str
    target: str


def fence_calls(text: str) -> list[FenceCall]:
    """The wrapper log's lines (see ``fence_wrapper``); bad lines are skipped."""
    calls = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        try:
            calls.append(FenceCall(float(fields[0]), float(fields[1]), int(fields[2]),
                                   fields[3], fields[4] if len(fields) > 4 else ""))
        except ValueError:
            continue
    return calls


@dataclass(frozen=True)
class Status:
    """What ``crm_mon`` says: the DC, the online nodes, where ``d1`` runs."""

    dc: str | None
    quorate: bool
    online: frozenset[str]
    owner: str | None


def parse_crm_mon(xml_text: str, resource: str = RESOURCE) -> Status:
    root = ET.fromstring(xml_text)
    dc_el = root.find("./summary/current_dc")
    dc = None
    quorate = False
    if dc_el is not None and dc_el.get("present") == "true":
        dc = dc_el.get("name")
        quorate = dc_el.get("with_quorum") == "true"
    online = frozenset(n.get("name", "") for n in root.iterfind("./nodes/node")
                       if n.get("online") == "true")
    owner = None
    for res in root.iterfind(".//resource"):
        if res.get("id") == resource and res.get("role") == "Started":
            node = res.find("node")
            if node is not None:
                owner = node.get("name")
    return Status(dc, quorate, online, owner)


_LOCATE = re.compile(r"is running on: (\S+)")


def parse_locate(out: str) -> str | None:
    m = _LOCATE.search(out)
    return m.group(1) if m else None


# -------------------------------------------------------------- installation

def missing_tools() -> list[str]:
    return [t for t in PACEMAKER_TOOLS if shutil.which(t, path=f"{SBIN}:/usr/bin") is None]


def ensure_installed() -> None:
    """Install Debian's Pacemaker if it is not there (the benchmark's job only)."""
    if not missing_tools():
        return
    log.warning("installing %s with apt-get (for --vs-pacemaker)", " ".join(PACKAGES))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                   check=True, env=env, stdin=subprocess.DEVNULL)
    if missing_tools():
        raise LabError(f"still missing after apt-get: {missing_tools()}")


def why_not() -> str | None:
    """Why the Pacemaker lab cannot run here, or None."""
    return probe() or (f"missing {missing_tools()}" if missing_tools() else None)


# ---------------------------------------------------------------------- lab

def share_namespaces(lab: CorosyncLab, i: int) -> None:
    """Show every lab node's network namespace in node ``i``'s ``/run/netns``.

    ``fence_netns`` finds a node by ``ip netns``, which reads ``/run/netns``:
    inside a node that is the node's private ``/run``, where nothing is. Each
    namespace is bound there from a holder process in it (as ``ip netns add``
    does from its own); the binds keep the namespaces, not the processes, so
    they stay valid while the target node is down. Every holder must be up.
    """
    script = ["mkdir -p /run/netns"]
    for node in lab.nodes.values():
        target = f"/run/netns/{node.netns}"
        script.append(f"touch {target} && mount --bind /proc/{node.pid}/ns/net {target}")
    lab.run(i, ["sh", "-c", " && ".join(script)])


class PacemakerLab:
    """Three (or n) namespace nodes running corosync and Pacemaker."""

    def __init__(self, n: int = 3, *, token: int = 500) -> None:
        self.corosync = CorosyncLab(n, token=token, cluster_name="pcmklab")
        self.names = dict(self.corosync.names)
        self.pacemakerd: dict[int, subprocess.Popen[Any]] = {}
        self.sbin = self.corosync.dir / "sbin"
        self.fence_log = self.corosync.dir / "fence.log"
        self._booted = False

    def __enter__(self) -> PacemakerLab:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- lifecycle

    def setup(self) -> None:
        lab = self.corosync
        lab.setup(start=False)
        # Pacemaker's daemons run as hacluster and write their log in the node dir.
        lab.dir.chmod(0o755)
        self.sbin.mkdir()
        wrapper = self.sbin / "fence_netns"
        wrapper.write_text(fence_wrapper(FENCE_AGENT, self.fence_log))
        wrapper.chmod(0o755)
        self.fence_log.touch()
        for i, node in lab.nodes.items():
            node.dir.chmod(0o755)
            # hires: corosync's membership lines carry milliseconds.
            node.conf.write_text(node.conf.read_text().replace(
                "timestamp: on", "timestamp: hires"))
            subprocess.run(["cp", "-a", "/var/lib/pacemaker", str(self.varlib(i))], check=True)
        for i in lab.nodes:
            self.start_node(i)
        for i in lab.nodes:  # now that every holder is up
            share_namespaces(lab, i)
        self._booted = True
        lab.wait_quorate(list(lab.nodes), len(lab.nodes))
        status = self.wait_status(lambda s: s.dc is not None and s.quorate
                                  and len(s.online) == len(lab.nodes),
                                  DC_TIMEOUT, "a quorate DC with every node online")
        log.info("DC %s elected", status.dc)
        self.configure()
        self.wait_status(lambda s: s.owner is not None, SETTLE_TIMEOUT, f"{RESOURCE} started")
        self.settle()

    def close(self) -> None:
        self.corosync.close()
        self.pacemakerd.clear()

    def leftovers(self) -> list[str]:
        """What close() failed to remove (namespaces, processes, files)."""
        lab = self.corosync
        left = []
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        left += [f"netns {line.split()[0]}" for line in r.stdout.splitlines()
                 if line.startswith(lab.prefix)]
        left += [f"pid {p.pid}" for p in lab._procs if p.poll() is None]
        if lab.dir.exists():
            left.append(f"dir {lab.dir}")
        return left

    def varlib(self, i: int) -> Path:
        return self.corosync.node(i).dir / "var-lib-pacemaker"

    def log_path(self, i: int) -> Path:
        return self.corosync.node(i).dir / "pacemaker.log"

    def start_node(self, i: int) -> None:
        """Boot node ``i``: namespace holder, corosync, mounts, pacemakerd."""
        lab = self.corosync
        lab.start_node(i)
        mounts = (f"mount --bind {shlex.quote(str(self.varlib(i)))} /var/lib/pacemaker && "
                  f"mount -t overlay overlay -o lowerdir={self.sbin}:{SBIN} {SBIN}")
        lab.run(i, ["sh", "-c", mounts])
        if self._booted:
            share_namespaces(lab, i)
        wait_for(lambda: lab.quorum(i) is not None, 30, f"corosync on {self.names[i]}", 0.05)
        env = {**os.environ, "PCMK_logfile": str(self.log_path(i)), "PCMK_logfacility": "none"}
        with open(self.corosync.node(i).dir / "pacemakerd.out", "ab") as out:
            self.pacemakerd[i] = lab.popen(i, [f"{SBIN}/pacemakerd", "-f"], env=env,
                                           stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT)

    def configure(self) -> None:
        first = min(self.names)
        self.tool(first, ["crm_attribute", "--type", "crm_config", "--name",
                          "stonith-enabled", "--update", "true"])
        self.tool(first, ["crm_attribute", "--type", "rsc_defaults", "--name",
                          "resource-stickiness", "--update", "100"])
        namespaces = {self.names[i]: node.netns for i, node in self.corosync.nodes.items()}
        self.tool(first, ["cibadmin", "--replace", "--scope", "resources", "--xml-text",
                          resources_xml(namespaces)])

    # ------------------------------------------------------------ queries

    def tool(self, i: int, argv: Sequence[str], *, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a Pacemaker CLI tool inside node ``i``."""
        return self.corosync.run(i, [f"{SBIN}/{argv[0]}", *argv[1:]], check=check,
                                 timeout=timeout)

    def status(self, i: int) -> Status | None:
        r = self.tool(i, ["crm_mon", "-1", "--output-as=xml"], check=False, timeout=30)
        if r.returncode != 0:
            return None
        try:
            return parse_crm_mon(r.stdout)
        except ET.ParseError:
            return None

    def any_status(self) -> Status | None:
        for i in self.up_nodes():
            s = self.status(i)
            if s is not None:
                return s
        return None

    def wait_status(self, cond: Callable[[Status], bool], timeout: float, what: str,
                    node: int | None = None) -> Status:
        def check() -> Status | None:
            s = self.status(node) if node is not None else self.any_status()
            return s if s is not None and cond(s) else None

        return wait_for(check, timeout, what, interval=0.25)

    def locate(self, i: int) -> str | None:
        r = self.tool(i, ["crm_resource", "--locate", "-r", RESOURCE], check=False, timeout=30)
        return parse_locate(r.stdout)

    def up_nodes(self) -> list[int]:
        return [i for i, n in self.corosync.nodes.items()
                if n.holder is not None and n.holder.poll() is None]

    def number(self, name: str) -> int:
        return next(i for i, n in self.names.items() if n == name)

    def settle(self, node: int | None = None) -> None:
        """Wait until the cluster has nothing left to do (``crm_resource --wait``)."""
        i = node if node is not None else self.up_nodes()[0]
        self.tool(i, ["crm_resource", "--wait", f"--timeout={int(SETTLE_TIMEOUT)}s"],
                  timeout=SETTLE_TIMEOUT + 10)

    def move_to(self, name: str) -> None:
        """Move ``d1`` to node ``name`` and leave it there (stickiness) unconstrained."""
        i = self.up_nodes()[0]
        self.tool(i, ["crm_resource", "--move", "-r", RESOURCE, "-N", name])
        try:
            self.wait_status(lambda s: s.owner == name, SETTLE_TIMEOUT, f"{RESOURCE} on {name}")
        finally:
            self.tool(i, ["crm_resource", "--clear", "-r", RESOURCE])
        self.settle()

    # -------------------------------------------------------------- faults

    def kill_node(self, i: int) -> float:
        """SIGKILL every process of node ``i``; returns the wall time of the kill."""
        lab = self.corosync
        node = lab.node(i)
        r = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True)
        pids = [int(p) for p in r.stdout.split()]
        t_kill = time.time()
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        lab.kill_node(i)  # whatever forked meanwhile, and reaping
        self.pacemakerd.pop(i, None)
        return t_kill

    def restart_node(self, i: int) -> None:
        """Boot a killed node again and wait until the cluster is whole and idle."""
        self.start_node(i)
        lab = self.corosync
        lab.wait_quorate(list(lab.nodes), len(lab.nodes))
        self.wait_status(lambda s: s.dc is not None and s.quorate
                         and len(s.online) == len(lab.nodes) and s.owner is not None,
                         SETTLE_TIMEOUT, f"{self.names[i]} back in the cluster")
        self.settle()
