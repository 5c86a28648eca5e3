"""A real corosync cluster in network namespaces, for tests and benchmarks.

``CorosyncLab(n)`` builds, on this host, as root:

- one bridge namespace ``rgm<pid>x<k>br`` holding ``br0``;
- per node ``i`` (1..n) a namespace ``rgm<pid>x<k>n<i>`` with ``eth0`` =
  10.77.0.<i>/24, veth-paired to ``v<i>`` on the bridge (nothing touches the
  root namespace, so no traffic can leave the host);
- per node a *holder* process (``sleep infinity``) started with
  ``ip netns exec`` (a private mount namespace) after bind-mounting the node's
  own ``run/`` directory over ``/run`` and a private tmpfs on ``/dev/shm``:
  corosync's pid lock, its IPC and its blackbox stay per node. corosync and
  every client are started with ``nsenter -t <holder> -m -n`` so they share
  that node's mount and network namespaces, and a client outlives a corosync
  that is killed and restarted under it.

``close()`` kills every process of every namespace it created (SIGKILL, then
waits for them), deletes the namespaces and the temporary directory; mounts
go away with the last process of each mount namespace. It is safe to call
twice and runs from a pytest finalizer even when the test failed.

Pytest: the ``corosync_lab`` fixture returns a factory ``make(n, **kw)``;
every lab it made is closed at teardown. Plain scripts (benchmarks) use the
class as a context manager. ``probe()`` says why a lab cannot be built here
(``None`` when it can); the fixture skips with that reason.

``show_netns=True`` binds the host's ``/run/netns`` into every node's
private ``/run``, so that ``ip netns`` inside a node sees the lab: the
rgmanager daemons run the lab's power switch (``fence_netns``) from there.

``RgmCluster(lab, rm_body)`` adds one rgmanager per node (``--backend
corosync``) on one shared cluster.conf with a fence method per node
(``fence_netns`` then ``fence_record``), and witness services whose LSB
script logs ``start|stop SERVICE NODE TIME`` to one file; each daemon's
socket, lock and service state live in the node's ``/run``, so a rebooted
node has forgotten what ran there.  The failover tests and
``benchmarks.failover_rgmanager`` use it.

The file is also the *agent* run inside a node by the backend tests
(``python cluster_lab.py agent ...``): it runs one ``CorosyncCluster``,
prints every delivery as a JSON line on stdout and takes commands (JSON
lines) on stdin. See ``Agent``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SUBNET = "10.77.0"
_counter = itertools.count(1)


class LabError(RuntimeError):
    pass


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def probe() -> str | None:
    """Why a lab cannot run on this host, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts)"
    for tool in ("corosync", "corosync-quorumtool", "ip", "nsenter", "sleep"):
        if _which(tool) is None:
            return f"{tool} not found"
    name = f"rgmprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns unavailable: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def wait_for(cond: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or raise
    ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def corosync_conf(name: str, nodes: Mapping[int, str], state_dir: Path | None, *,
                  token: int = 500, extra_totem: Mapping[str, str] | None = None) -> str:
    """The lab's corosync.conf: knet, no crypto, votequorum."""
    totem = {"version": "2", "cluster_name": name, "transport": "knet",
             "crypto_cipher": "none", "crypto_hash": "none",
             "token": str(token), "token_coefficient": "0", **(extra_totem or {})}
    lines = ["totem {"] + [f"    {k}: {v}" for k, v in totem.items()] + ["}", ""]
    lines += ["quorum {", "    provider: corosync_votequorum"]
    if len(nodes) == 2:
        lines.append("    two_node: 1")
    lines += ["}", "", "nodelist {"]
    for nodeid, node in sorted(nodes.items()):
        lines += ["    node {", f"        name: {node}", f"        nodeid: {nodeid}",
                  f"        ring0_addr: {SUBNET}.{nodeid}", "    }"]
    lines += ["}", "", "logging {", "    to_stderr: yes", "    to_syslog: no",
              "    to_logfile: no", "    timestamp: on", "}", ""]
    if state_dir is not None:
        lines += ["system {", f"    state_dir: {state_dir}", "}", ""]
    return "\n".join(lines)


class Node:
    """One lab node: its namespace, directory, holder and corosync processes."""

    def __init__(self, lab: CorosyncLab, nodeid: int) -> None:
        self.lab = lab
        self.nodeid = nodeid
        self.name = f"node{nodeid}"
        self.netns = f"{lab.prefix}n{nodeid}"
        self.veth = f"v{nodeid}"  # bridge side, inside the bridge namespace
        self.dir = lab.dir / self.name
        self.holder: subprocess.Popen[bytes] | None = None
        self.corosync: subprocess.Popen[bytes] | None = None
        self.corosync_starts = 0

    @property
    def conf(self) -> Path:
        return self.dir / "corosync.conf"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.nodeid}"

    @property
    def pid(self) -> int:
        """The pid whose namespaces the node's processes share (the holder)."""
        if self.holder is None or self.holder.poll() is not None:
            raise LabError(f"{self.name} is down")
        return self.holder.pid

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", *argv]

    def log_path(self) -> Path:
        return self.dir / f"corosync.{self.corosync_starts}.log"


class CorosyncLab:
    """An N-node corosync cluster in network namespaces (see the module doc)."""

    def __init__(self, n: int = 3, *, token: int = 500, cluster_name: str = "rgmlab",
                 extra_totem: Mapping[str, str] | None = None,
                 show_netns: bool = False) -> None:
        if not 1 <= n <= 200:
            raise ValueError("1..200 nodes")
        self.n = n
        # Inside a node /run is the node's own: with show_netns the host's
        # /run/netns is bound into it, so that ``ip netns`` (and fence_netns,
        # the lab's power switch, run by a node's daemon) sees the lab's nodes.
        self.show_netns = show_netns
        self.token = token
        self.cluster_name = cluster_name
        self.extra_totem = dict(extra_totem or {})
        self.prefix = f"rgm{os.getpid()}x{next(_counter)}"
        self.bridge_ns = f"{self.prefix}br"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.nodes = {i: Node(self, i) for i in range(1, n + 1)}
        self.names = {i: node.name for i, node in self.nodes.items()}
        self._netns: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False

    # ------------------------------------------------------------- lifecycle

    def __enter__(self) -> CorosyncLab:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self, start: bool = True) -> CorosyncLab:
        """Build the network; with ``start`` boot every node and wait for quorum."""
        try:
            self._add_netns(self.bridge_ns)
            self._ip(self.bridge_ns, "link", "add", "br0", "type", "bridge")
            self._ip(self.bridge_ns, "link", "set", "br0", "up")
            for node in self.nodes.values():
                self._add_netns(node.netns)
                self._ip(self.bridge_ns, "link", "add", node.veth, "type", "veth",
                         "peer", "name", "eth0", "netns", node.netns)
                self._ip(self.bridge_ns, "link", "set", node.veth, "master", "br0")
                self._ip(self.bridge_ns, "link", "set", node.veth, "up")
                self._ip(node.netns, "link", "set", "lo", "up")
                self._ip(node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
                self._ip(node.netns, "link", "set", "eth0", "up")
                (node.dir / "run").mkdir(parents=True)
                (node.dir / "state").mkdir()
                node.conf.write_text(corosync_conf(
                    self.cluster_name, self.names, node.dir / "state", token=self.token,
                    extra_totem=self.extra_totem))
            if start:
                for i in self.nodes:
                    self.start_node(i)
                self.wait_quorate(list(self.nodes), len(self.nodes))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill everything, delete the namespaces and the directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for ns in reversed(self._netns):
            self._kill_netns(ns)
        for proc in self._procs:
            with contextlib.suppress(Exception):
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
        for ns in reversed(self._netns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._netns.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ----------------------------------------------------------------- nodes

    def node(self, i: int | str) -> Node:
        if isinstance(i, str):
            i = int(i.removeprefix("node"))
        return self.nodes[i]

    def start_node(self, i: int | str) -> None:
        """Boot a node: a fresh holder (mount namespace) and corosync."""
        node = self.node(i)
        if node.holder is not None and node.holder.poll() is None:
            raise LabError(f"{node.name} is already up")
        for sub in ("run", "state"):  # a rebooted node starts clean
            shutil.rmtree(node.dir / sub, ignore_errors=True)
            (node.dir / sub).mkdir()
        script = (f"mount --bind {node.dir}/run /run && "
                  "mount -t tmpfs -o size=256m tmpfs /dev/shm && exec sleep infinity")
        if self.show_netns:
            # Bound before /run is covered; --rbind carries the namespace files along.
            (node.dir / "run" / "netns").mkdir()
            script = (f"mount --rbind /run/netns {node.dir}/run/netns && "
                      + script.replace("mount --bind", "mount --rbind", 1))
        node.holder = self._popen(["ip", "netns", "exec", node.netns, "sh", "-c", script],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        holder = node.holder
        # The holder is ready when /run inside its mount namespace is the node's run/.
        marker = node.dir / "run" / ".holder"
        marker.write_text(str(holder.pid))

        def mounted() -> bool:
            if holder.poll() is not None:
                err = holder.stderr.read().decode() if holder.stderr else ""
                raise LabError(f"{node.name}: namespace holder died: {err.strip()}")
            try:
                # The holder execs sleep: its pid keeps the mounts.
                with open(f"/proc/{holder.pid}/comm") as f:
                    if f.read().strip() != "sleep":
                        return False
                return os.path.exists(f"/proc/{holder.pid}/root/run/.holder")
            except OSError:
                return False

        wait_for(mounted, 10, f"{node.name} namespace holder")
        self.start_corosync(i)

    def start_corosync(self, i: int | str) -> None:
        """Start corosync in the node's namespaces (its holder must be up)."""
        node = self.node(i)
        if node.corosync is not None and node.corosync.poll() is None:
            raise LabError(f"corosync already runs on {node.name}")
        node.corosync_starts += 1
        with open(node.log_path(), "wb") as log:
            node.corosync = self._popen(
                node.nsenter(["corosync", "-f", "-c", str(node.conf)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def kill_node(self, i: int | str) -> None:
        """SIGKILL every process of the node (a crash); its mounts vanish with them."""
        node = self.node(i)
        self._kill_netns(node.netns)
        for proc in (node.corosync, node.holder):
            if proc is not None:
                proc.wait(timeout=10)
        node.corosync = node.holder = None

    def kill_corosync(self, i: int | str, sig: int = signal.SIGKILL) -> None:
        """Kill only corosync; clients in the node keep running."""
        node = self.node(i)
        if node.corosync is None:
            raise LabError(f"corosync is not running on {node.name}")
        # nsenter execs corosync: the Popen pid is corosync's.
        node.corosync.send_signal(sig)
        node.corosync.wait(timeout=10)
        node.corosync = None

    def pids(self, i: int | str) -> list[int]:
        """Every process in the node's network namespace (none: the node is off)."""
        return self._netns_pids(self.node(i).netns)

    def corosync_running(self, i: int | str) -> bool:
        proc = self.node(i).corosync
        return proc is not None and proc.poll() is None

    def cut(self, i: int | str) -> None:
        """Cut the node's link (its veth on the bridge goes down)."""
        self._ip(self.bridge_ns, "link", "set", self.node(i).veth, "down")

    def heal(self, i: int | str) -> None:
        self._ip(self.bridge_ns, "link", "set", self.node(i).veth, "up")

    # ------------------------------------------------------------- commands

    def run(self, i: int | str, argv: Sequence[str], *, check: bool = True,
            timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in the node's mount and network namespaces."""
        r = subprocess.run(self.node(i).nsenter(argv), capture_output=True, text=True,
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise LabError(f"{self.node(i).name}: {' '.join(argv)} exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()}")
        return r

    def popen(self, i: int | str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a process in the node's namespaces; it is killed at ``close()``."""
        return self._popen(self.node(i).nsenter(argv), **kw)

    def quorum(self, i: int | str) -> dict[str, Any] | None:
        """``corosync-quorumtool -s`` of a node, parsed (None if it cannot answer)."""
        node = self.node(i)
        if node.corosync is None or node.corosync.poll() is not None:
            return None
        r = self.run(i, ["corosync-quorumtool", "-s"], check=False, timeout=10)
        out = r.stdout
        m = re.search(r"^Quorate:\s+(\w+)", out, re.M)
        if not m:
            return None
        members = [int(x) for x in re.findall(r"^\s+(\d+)\s+\d+\s+\S+", out, re.M)]
        return {"quorate": m.group(1) == "Yes", "members": sorted(members)}

    def wait_quorate(self, nodes: Sequence[int], members: int, timeout: float = 30,
                     quorate: bool = True) -> None:
        """Wait until each of ``nodes`` sees ``members`` members and ``quorate``."""
        def ok() -> bool:
            for i in nodes:
                q = self.quorum(i)
                if q is None or q["quorate"] != quorate or len(q["members"]) != members:
                    return False
            return True

        try:
            wait_for(ok, timeout, f"nodes {list(nodes)}: {members} members, "
                     f"quorate={quorate}", interval=0.1)
        except TimeoutError as err:
            raise TimeoutError(f"{err}; last: {[self.quorum(i) for i in nodes]}; "
                               f"logs in {self.dir}") from None

    # ------------------------------------------------------------- internals

    def _popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        if self._closed:
            raise LabError("lab is closed")
        proc = subprocess.Popen(list(argv), **kw)
        self._procs.append(proc)
        return proc

    def _add_netns(self, ns: str) -> None:
        r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"ip netns add {ns}: {r.stderr.strip()}")
        self._netns.append(ns)

    @staticmethod
    def _ip(ns: str, *args: str) -> None:
        r = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"ip -n {ns} {' '.join(args)}: {r.stderr.strip()}")

    @staticmethod
    def _netns_pids(ns: str) -> list[int]:
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []

    def _kill_netns(self, ns: str) -> None:
        """SIGKILL every process in ``ns`` until none is left."""
        def gone() -> bool:
            pids = self._netns_pids(ns)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # Reap our own children so they do not linger as zombies.
            for proc in self._procs:
                if proc.pid in pids:
                    with contextlib.suppress(Exception):
                        proc.wait(timeout=0.5)
            return not pids

        with contextlib.suppress(TimeoutError):
            wait_for(gone, 10, f"processes of {ns} to die", interval=0.02)


# ----------------------------------------------------------------- pytest glue

def lab_factory() -> tuple[Callable[..., CorosyncLab], Callable[[], None]]:
    """(make, close_all): what the pytest fixture wraps, usable without pytest."""
    labs: list[CorosyncLab] = []

    def make(n: int = 3, *, start: bool = True, **kw: Any) -> CorosyncLab:
        lab = CorosyncLab(n, **kw)
        labs.append(lab)
        lab.setup(start=start)
        return lab

    def close_all() -> None:
        for lab in labs:
            lab.close()

    return make, close_all


try:
    import pytest
except ImportError:  # pragma: no cover - scripts without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def corosync_lab() -> Iterator[Callable[..., CorosyncLab]]:
        """Factory ``make(n=3, token=500)`` -> a started ``CorosyncLab``; all torn down
        after the test, pass or fail. Skips when a lab cannot be built here."""
        reason = probe()
        if reason:
            pytest.skip(reason)
        make, close_all = lab_factory()
        try:
            yield make
        finally:
            close_all()


# ------------------------------------------------------------------ the agent

class Agent:
    """Runs one ``CorosyncCluster`` in this process (inside a node).

    stdout, one JSON object a line, ``t`` = time.monotonic() (CLOCK_MONOTONIC is
    shared by all namespaces, so the test can compare times across nodes):

    - ``{"ev": "change", "members", "joined", "left", "quorate", "epoch", "t"}``
    - ``{"ev": "msg", "sender", "payload", "t"}``; a payload with a ``blob``
      string is printed with ``blob`` replaced by its length and sha256
    - ``{"ev": "lost", "reason", "t"}``
    - ``{"ev": "reply", "id", ...}`` for commands

    stdin commands: ``{"cmd": "broadcast", "payload"}``, ``{"cmd": "blob",
    "size", "id"}`` (broadcast ``{"id", "blob": "x"*size}``), ``{"cmd":
    "online", "id"}``, ``{"cmd": "membership", "id"}``; EOF stops.
    """

    def __init__(self, local: str, nodes: Mapping[int, str], group: str) -> None:
        from rgmanager.cluster.corosync import CorosyncCluster

        self.cluster = CorosyncCluster(local, nodes, group)
        self.out_lock = threading.Lock()

    def emit(self, obj: dict[str, Any]) -> None:
        obj.setdefault("t", time.monotonic())
        line = json.dumps(obj)
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def deliver(self, d: Any) -> None:
        from rgmanager.cluster.base import ClusterLost, MembershipChange, Message

        if isinstance(d, MembershipChange):
            m = d.membership
            self.emit({"ev": "change", "members": list(m.members), "joined": list(d.joined),
                       "left": list(d.left), "quorate": m.quorate, "epoch": m.epoch})
        elif isinstance(d, Message):
            payload = dict(d.payload)
            if isinstance(payload.get("blob"), str):
                blob = payload.pop("blob").encode()
                payload["blob_len"] = len(blob)
                payload["blob_sha256"] = hashlib.sha256(blob).hexdigest()
            self.emit({"ev": "msg", "sender": d.sender, "payload": payload})
            if payload.get("echo") and d.sender != self.cluster.local_node:
                # broadcast from inside deliver (the manager does this)
                self.cluster.broadcast({"echo_of": payload["echo"],
                                        "by": self.cluster.local_node})
        elif isinstance(d, ClusterLost):
            self.emit({"ev": "lost", "reason": d.reason})

    def run(self) -> None:
        self.cluster.start(self.deliver)
        try:
            for line in sys.stdin:
                if not line.strip():
                    continue
                cmd = json.loads(line)
                kind = cmd.get("cmd")
                if kind == "broadcast":
                    self.cluster.broadcast(cmd["payload"])
                elif kind == "blob":
                    blob = "x" * int(cmd["size"])
                    self.emit({"ev": "reply", "id": cmd.get("id"), "sha256":
                               hashlib.sha256(blob.encode()).hexdigest()})
                    self.cluster.broadcast({"id": cmd.get("id"), "blob": blob})
                elif kind == "online":
                    self.emit({"ev": "reply", "id": cmd.get("id"),
                               "online": list(self.cluster.online_nodes())})
                elif kind == "membership":
                    m = self.cluster.membership()
                    self.emit({"ev": "reply", "id": cmd.get("id"), "members": list(m.members),
                               "quorate": m.quorate})
        finally:
            self.cluster.stop()
            self.emit({"ev": "stopped"})


def _agent_main(argv: Sequence[str]) -> int:
    import argparse
    import logging

    p = argparse.ArgumentParser(prog="cluster_lab.py agent")
    p.add_argument("--local", required=True)
    p.add_argument("--nodes", required=True, help="1=node1,2=node2,...")
    p.add_argument("--group", default="rgmanager")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    nodes = {int(k): v for k, v in (item.split("=", 1) for item in a.nodes.split(","))}
    Agent(a.local, nodes, a.group).run()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "agent":
        sys.path.insert(0, str(REPO))
        raise SystemExit(_agent_main(sys.argv[2:]))
    # Smoke test: python tests/cluster_lab.py [N]
    reason = probe()
    if reason:
        raise SystemExit(f"cannot build a lab: {reason}")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    t0 = time.monotonic()
    with CorosyncLab(n) as lab:
        print(f"{n} nodes quorate after {time.monotonic() - t0:.2f}s in {lab.dir}")
        print({i: lab.quorum(i) for i in lab.nodes})


# ------------------------------------------------------- rgmanager on the lab

#: The lab's power switch: SIGKILLs every process of a namespace node.
FENCE_NETNS = REPO / "tests" / "fence_agents" / "fence_netns"
#: A fence agent that appends ``# pid=P t=MONOTONIC`` and its stdin to ``logfile=``.
FENCE_RECORD = REPO / "tests" / "fence_agents" / "fence_record"

#: Inside a node: where its rgmanager keeps the control socket, the lock and
#: the services' state.  Under the node's private /run, so that a reboot of
#: the node (``start_node`` empties it) forgets what ran there, as a real one does.
NODE_RUN_STATE = "/run/rgm"

WITNESS_LSB = """#!/bin/sh
# A service's LSB script that leaves a witness: "start|stop SERVICE NODE TIME"
# (wall clock) in one log file shared by every node, and its running state in
# $HA_RSCTMP (the node's own, named after the node).
d="$HA_RSCTMP"; n="$OCF_RESKEY_name"; node="${d##*/}"
case "$1" in
start) echo "start $n $node $(date +%s.%N)" >> WITNESS; touch "$d/$n.on" ;;
stop) [ -e "$d/$n.on" ] && echo "stop $n $node $(date +%s.%N)" >> WITNESS
      rm -f "$d/$n.on" ;;
status) [ -e "$d/$n.on" ] && exit 0; exit 3 ;;
esac
exit 0
"""


def witness_events(text: str) -> list[tuple[str, str, str, float]]:
    """The witness log's ``(action, service, node, wall-clock time)`` lines, in order."""
    events = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4:
            with contextlib.suppress(ValueError):
                events.append((fields[0], fields[1], fields[2], float(fields[3])))
    return events


def fence_records(text: str) -> list[tuple[float, dict[str, str]]]:
    """``fence_record``'s log: ``(monotonic time, the key=value lines it got)`` per call."""
    records: list[tuple[float, dict[str, str]]] = []
    for block in text.split("# pid=")[1:]:
        head, _, body = block.partition("\n")
        m = re.search(r"t=([\d.]+)", head)
        if m is None:
            continue
        args = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
        records.append((float(m.group(1)), args))
    return records


def rgm_cluster_conf(lab: CorosyncLab, rm_body: str, *, version: int = 1,
                     fence: bool = True, fence_delay: Mapping[int, float] | None = None,
                     fence_agent: Path | str = FENCE_NETNS, record: Path | None = None,
                     extra_device: tuple[str, str, str] | None = None,
                     rm_attrs: str = 'status_poll_interval="1"') -> str:
    """cluster.conf for the lab's nodes (one file every node reads).

    With ``fence`` each node has one method: the power switch (``fence_agent``,
    ``port`` = the node's namespace; ``delay`` from ``fence_delay``) and, when
    ``record`` is given, ``fence_record`` after it, so the record's time is
    the moment the node was certainly off.  ``extra_device`` = (name, agent,
    attributes of the method's ``<device>`` line, ``{node}`` replaced by the
    node's name) ends every method with one more device.
    """
    delays = dict(fence_delay or {})
    nodes = []
    for i, node in lab.nodes.items():
        if not fence:
            nodes.append(f'    <clusternode name="{node.name}" nodeid="{i}"/>')
            continue
        delay = f' delay="{delays[i]:g}"' if i in delays else ""
        devices = f'<device name="switch" port="{node.netns}"{delay}/>'
        if record is not None:
            devices += f'<device name="record" logfile="{record}"/>'
        if extra_device is not None:
            devices += (f'<device name="{extra_device[0]}" '
                        f'{extra_device[2].replace("{node}", node.name)}/>')
        nodes.append(f'    <clusternode name="{node.name}" nodeid="{i}"><fence>'
                     f'<method name="power">{devices}</method></fence></clusternode>')
    devices = ""
    if fence:
        devices = f'  <fencedevices>\n    <fencedevice name="switch" agent="{fence_agent}"/>\n'
        if record is not None:
            devices += f'    <fencedevice name="record" agent="{FENCE_RECORD}"/>\n'
        if extra_device is not None:
            devices += (f'    <fencedevice name="{extra_device[0]}" '
                        f'agent="{extra_device[1]}"/>\n')
        devices += "  </fencedevices>\n"
    two_node = '  <cman two_node="1" expected_votes="1"/>\n' if lab.n == 2 else ""
    members = "\n".join(nodes)
    return (f'<?xml version="1.0"?>\n<cluster name="{lab.cluster_name}" '
            f'config_version="{version}">\n{two_node}'
            f"  <clusternodes>\n{members}\n  </clusternodes>\n{devices}"
            f"  <rm {rm_attrs}>\n{rm_body}\n  </rm>\n</cluster>\n")


def ordered_domain(name: str, order: Sequence[int], *, nofailback: bool = False,
                   restricted: bool = False) -> str:
    """An ordered ``<failoverdomain>``: ``order[0]`` is the most preferred node."""
    nodes = "".join(f'<failoverdomainnode name="node{i}" priority="{p}"/>'
                    for p, i in enumerate(order, 1))
    return (f'<failoverdomain name="{name}" ordered="1" restricted="{int(restricted)}" '
            f'nofailback="{int(nofailback)}">{nodes}</failoverdomain>')


def witness_service(name: str, lsb: Path | str, domain: str | None = None,
                    interval: int = 1) -> str:
    """A service of one ``script`` resource running ``lsb`` (see ``WITNESS_LSB``)
    through a link of its own, ``LSB-NAME`` (a script's file is a unique attribute;
    ``RgmCluster`` makes the links)."""
    dom = f' domain="{domain}"' if domain else ""
    return (f'<service name="{name}"{dom} recovery="relocate">'
            f'<script name="{name}" file="{lsb}-{name}">'
            f'<action name="status" depth="*" interval="{interval}"/></script></service>')


def clustat_json(sock: Path) -> dict[str, Any]:
    """``clustat --json`` against the daemon at ``sock`` ({} if it does not answer)."""
    r = subprocess.run([PYTHON, "-m", "rgmanager.cli.clustat", "--json"], cwd=REPO,
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "RGMANAGER_SOCKET": str(sock)})
    if r.returncode not in (0, 1) or not r.stdout.strip():
        return {}
    try:
        view: dict[str, Any] = json.loads(r.stdout)
    except ValueError:
        return {}
    return view


class RgmDaemon:
    """``rgmanager --backend corosync`` in one lab node (see ``RgmCluster``)."""

    def __init__(self, cluster: RgmCluster, nodeid: int) -> None:
        self.cluster = cluster
        self.lab = cluster.lab
        self.nodeid = nodeid
        self.name = f"node{nodeid}"
        self.node = self.lab.node(nodeid)
        self.log = self.node.dir / "rgmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        """The node's ``NODE_RUN_STATE`` as seen from outside the node."""
        return self.node.dir / "run" / NODE_RUN_STATE.removeprefix("/run/")

    @property
    def sock(self) -> Path:
        return self.run_dir / "rgmanager.sock"

    @property
    def state(self) -> Path:
        return self.run_dir / self.name

    def start(self) -> None:
        """Start the daemon (the node's holder and corosync must be up)."""
        if self.proc is not None and self.proc.poll() is None:
            raise LabError(f"rgmanager already runs on {self.name}")
        self.state.mkdir(parents=True, exist_ok=True)
        inside = f"{NODE_RUN_STATE}/{self.name}"
        with open(self.log, "ab") as out:
            out.write(f"===== start {time.time():.6f}\n".encode())
            out.flush()
            self.proc = self.lab.popen(self.nodeid, [
                PYTHON, "-m", "rgmanager.cli.daemon_main", "-c", str(self.cluster.conf),
                "--backend", "corosync", "--node", self.name,
                "--socket", f"{NODE_RUN_STATE}/rgmanager.sock",
                "--lock-file", f"{NODE_RUN_STATE}/rgmanager.pid"],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "HA_RSCTMP": inside,
                     "RGMANAGER_CACHE_DIR": f"{NODE_RUN_STATE}/cache"})

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL rgmanager only (corosync and the services stay)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def status(self) -> dict[str, Any]:
        """``clustat --json`` against this daemon ({} if it does not answer)."""
        return clustat_json(self.sock) if self.alive() else {}

    def clusvcadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``clusvcadm ARGS`` against this daemon."""
        return subprocess.run([PYTHON, "-m", "rgmanager.cli.clusvcadm", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RGMANAGER_SOCKET": str(self.sock)})

    def table(self) -> dict[str, tuple[str, str | None]]:
        return {s["name"]: (s["state"], s["owner"]) for s in self.status().get("services", [])}

    def runs(self, service: str) -> bool:
        """The service's script says it runs here (its marker in this node's /run);
        nothing runs on a node that is off (its /run is forgotten at the next boot)."""
        holder = self.node.holder
        if holder is None or holder.poll() is not None:
            return False
        return (self.state / f"{service}.on").exists()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class RgmCluster:
    """A ``CorosyncLab`` with one rgmanager per node, one shared cluster.conf,
    witness services and (by default) fencing through ``fence_netns``.

    ``rm_body`` may use ``{lsb}`` for the witness LSB script's path, and
    ``{lsb}-NAME`` for a link to it (made here) when several services use it.  Every
    start and stop of a witness service is a line in ``witness``; every fence
    is a record in ``fence_log`` (written after the node was switched off).
    """

    def __init__(self, lab: CorosyncLab, rm_body: str, **conf: Any) -> None:
        self.lab = lab
        self.dir = lab.dir / "rgm"
        self.dir.mkdir(exist_ok=True)
        self.witness = self.dir / "witness.log"
        self.witness.touch()
        self.fence_log = self.dir / "fence.log"
        self.lsb = self.dir / "witness-lsb"
        self.lsb.write_text(WITNESS_LSB.replace("WITNESS", str(self.witness)))
        self.lsb.chmod(0o755)
        self.conf = self.dir / "cluster.conf"
        self.conf_args = {"record": self.fence_log, **conf}
        self.rm_body = rm_body
        self.write_conf()
        self.daemons = {i: RgmDaemon(self, i) for i in lab.nodes}

    def write_conf(self, version: int = 1, rm_body: str | None = None) -> None:
        if rm_body is not None:
            self.rm_body = rm_body
        for name in re.findall(r"\{lsb\}-([\w.-]+)", self.rm_body):
            link = self.dir / f"{self.lsb.name}-{name}"
            if not link.exists():
                link.symlink_to(self.lsb)
        self.conf.write_text(rgm_cluster_conf(
            self.lab, self.rm_body.replace("{lsb}", str(self.lsb)), version=version,
            **self.conf_args))

    def __getitem__(self, i: int) -> RgmDaemon:
        return self.daemons[i]

    def start(self, nodes: Sequence[int] | None = None) -> None:
        for i in nodes if nodes is not None else list(self.daemons):
            self.daemons[i].start()

    # ------------------------------------------------------------ observation

    def running(self, service: str) -> list[int]:
        """Nodes whose script says ``service`` runs there."""
        return [i for i, d in self.daemons.items() if d.runs(service)]

    def events(self) -> list[tuple[str, str, str, float]]:
        return witness_events(self.witness.read_text())

    def fences(self) -> list[tuple[float, dict[str, str]]]:
        """Fence records: (wall-clock time the node was off, the agent's arguments)."""
        if not self.fence_log.exists():
            return []
        offset = time.time() - time.monotonic()
        return [(t + offset, args) for t, args in fence_records(self.fence_log.read_text())]

    def logs(self) -> str:
        parts = [f"--- witness ---\n{self.witness.read_text()}"]
        if self.fence_log.exists():
            parts.append(f"--- fence records ---\n{self.fence_log.read_text()}")
        parts += [f"--- node{i} rgmanager ---\n{d.text()}" for i, d in self.daemons.items()]
        return "\n".join(parts)

    def wait(self, cond: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        """``wait_for`` that puts every log in the error."""
        try:
            return wait_for(cond, timeout, what)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.logs()}") from None

    def settled(self, nodes: Sequence[int], services: Mapping[str, int | None]) -> bool:
        """Every daemon of ``nodes`` holds the table, sees ``nodes`` running
        rgmanager, and each service is started on the given node (None: stopped
        or disabled anywhere); each script runs exactly there."""
        want = {f"service:{s}": (f"node{o}" if o else None) for s, o in services.items()}
        for i in nodes:
            view = self.daemons[i].status()
            if not view or view.get("stale"):
                return False
            rgm = sorted(int(m["name"].removeprefix("node")) for m in view["members"]
                         if m.get("rgmanager"))
            if rgm != sorted(nodes):
                return False
            table = {s["name"]: s for s in view["services"]}
            for name, owner in want.items():
                s = table.get(name)
                if s is None:
                    return False
                if owner is None and s["state"] == "started":
                    return False
                if owner is not None and (s["state"], s["owner"]) != ("started", owner):
                    return False
        for s, o in services.items():
            if self.running(s) != ([o] if o else []):
                return False
        return True

    def wait_settled(self, nodes: Sequence[int], services: Mapping[str, int | None],
                     timeout: float = 60) -> None:
        self.wait(lambda: self.settled(nodes, services),
                  f"nodes {list(nodes)} agreeing on {dict(services)}", timeout)
