"""CPU per status check for every built-in agent, through the daemon's path.

Run: .venv/bin/python -m benchmarks.bench_status [--repeats 5] [--only fs,ip]
     [--daemon 1000]   (also: the daemon's RSS with N services, after checks ran)

Every check goes through ``executor.run_action``, exactly as the daemon runs
it: our agents in the persistent agent host, third-party agents as processes.
Beside our agents, the same numbers for the floor (fork+exec ``/bin/true`` as
an agent) and Debian's heartbeat ``Dummy`` monitor, and our ``service`` agent
as a process (``RGMANAGER_AGENT_HOST=0``, what every check cost before the
host).

CPU per check is user+system time of the whole process tree divided by the
checks in a batch: this process (the daemon's side), its reaped children
(agent processes), and the host workers (``/proc/PID/schedstat`` for their own
time, ``cutime+cstime`` for what they forked, e.g. an LSB script).  Each
batch is one repeat; min/median/max over repeats.  Load at N services is the
median cost times N checks per status interval (the agent's own depth-0
interval from its meta-data; 10 s, Pacemaker's usual monitor, for Dummy and
the floor).

Each case runs in a child process of its own (fresh accounting, fresh host
workers); ``ip`` runs in a private network namespace (``unshare -n``) with a
veth pair; ``fs``/``clusterfs``/``lvm`` need root and a loop device; the NFS
agents need a kernel NFS server.  A case that cannot run here is skipped
with the reason printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rgmanager import executor
from rgmanager.agenthost import pool as agent_host
from rgmanager.executor import ActionRequest, run_action

REPO = Path(__file__).resolve().parents[1]
AGENTS = REPO / "resource-agents"
DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
TICK = os.sysconf("SC_CLK_TCK")

LSB = """#!/bin/sh
case "$1" in
start|stop) exit 0 ;;
status) exit 0 ;;
esac
exit 3
"""


class Skip(Exception):
    """This case cannot run on this machine (the message says why)."""


@dataclass
class Case:
    """One status check to repeat, and how to get the resource there."""

    label: str
    request: ActionRequest
    interval: float
    setup: list[ActionRequest] = field(default_factory=list)
    teardown: list[ActionRequest] = field(default_factory=list)
    host: bool = True


@dataclass
class Result:
    """One case's figures (per repeat), or why it was skipped."""

    label: str
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    interval: float = 0.0
    batch: int = 0
    host: bool = False
    skipped: str | None = None


CaseFactory = Callable[[Path, int], AbstractContextManager[Case]]


def sh(*argv: str) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise Skip(f"{argv[0]} not installed") from None
    if p.returncode != 0:
        why = " / ".join((p.stderr or p.stdout).strip().splitlines()[:2])
        raise Skip(f"{' '.join(argv)}: {why[:200]}")
    return p.stdout.strip()


def req(agent: Path, action: str, params: dict[str, str], depth: int = 0,
        timeout: float = 60) -> ActionRequest:
    type_ = agent.name
    return ActionRequest(agent=str(agent), action=action, params=params, resource_type=type_,
                         instance=f"{type_}:{params.get('name', 'bench')}",
                         ocf_root=str(agent.parent) if agent.parent == AGENTS else "/usr/lib/ocf",
                         check_level=depth, timeout=timeout)


def interval_of(agent: Path, depth: int) -> float:
    """The agent's own interval for a status at *depth*, from its meta-data."""
    from rgmanager.agents.rules import parse_metadata
    res = run_action(req(agent, "meta-data", {}))
    rule = parse_metadata(res.output, str(agent), str(agent.parent))
    for a in rule.actions:
        if a.name == "status" and a.depth == depth and a.interval:
            return float(a.interval)
    return 60.0


# --- CPU accounting ------------------------------------------------------------------


def _worker_cpu(pid: int) -> float:
    """A host worker's own CPU (ns resolution) plus what its reaped children used."""
    try:
        own = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return own + (int(fields[13]) + int(fields[14])) / TICK  # cutime, cstime


def tree_cpu() -> tuple[float, dict[int, float]]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = {pid: _worker_cpu(pid) for pid in executor.host_worker_pids()}
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, workers


def spent(before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]) -> float:
    total = after[0] - before[0]
    for pid, cpu in after[1].items():
        total += cpu - before[1].get(pid, 0.0)  # a worker started meanwhile counts whole
    return total


def measure(case: Case, repeats: int, batch: int) -> Result:
    for r in case.setup:
        res = run_action(r)
        if not res.ok:
            raise Skip(f"{r.action} failed (rc {res.rc}): {res.output.strip()[-300:]}")
    first = run_action(case.request)
    if not first.ok:
        raise Skip(f"status failed (rc {first.rc}): {first.output.strip()[-300:]}")
    for _ in range(max(3, batch // 10)):  # warm: workers started, modules imported
        run_action(case.request)
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        c0, w0 = tree_cpu(), time.perf_counter()
        for _ in range(batch):
            res = run_action(case.request)
            assert res.ok, res
        c1, w1 = tree_cpu(), time.perf_counter()
        cpu.append(spent(c0, c1) / batch * 1000)
        wall.append((w1 - w0) / batch * 1000)
    return Result(case.label, cpu, wall, case.interval, batch, case.host)


# --- the cases -------------------------------------------------------------------------


@contextmanager
def _torn_down(c: Case) -> Iterator[Case]:
    """Run the case's teardown actions however the measurement ends."""
    try:
        yield c
    finally:
        for r in c.teardown:
            run_action(r)


@contextmanager
def loop_fs(tmp: Path, fstype: str = "ext4") -> Iterator[tuple[str, Path]]:
    if os.geteuid() != 0:
        raise Skip("needs root (loop device, mount)")
    image = tmp / "fs.img"
    with open(image, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    dev = sh("losetup", "-f", "--show", str(image))
    try:
        sh(f"mkfs.{fstype}", "-q", dev)
        mnt = tmp / "mnt"
        mnt.mkdir()
        yield dev, mnt
    finally:
        subprocess.run(["umount", "-l", str(tmp / "mnt")], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


@contextmanager
def case_floor(tmp: Path, depth: int) -> Iterator[Case]:
    yield Case("fork+exec /bin/true (floor)", req(Path("/bin/true"), "status", {}), 10.0,
               host=False)


@contextmanager
def case_dummy(tmp: Path, depth: int) -> Iterator[Case]:
    if not DUMMY.exists():
        raise Skip(f"{DUMMY} not installed (setup.sh installs resource-agents)")
    params = {"state": str(tmp / "dummy.state")}
    yield Case("heartbeat Dummy monitor (process)", req(DUMMY, "monitor", params), 10.0,
               setup=[req(DUMMY, "start", params)], host=False)


def _ours(agent: str, params: dict[str, str], depth: int = 0, label: str = "",
          setup: bool = True) -> Case:
    path = AGENTS / agent
    return Case(label or (f"{agent} depth {depth}" if depth else agent),
                req(path, "status", params, depth), interval_of(path, depth),
                setup=[req(path, "start", params)] if setup else [],
                teardown=[req(path, "stop", params)] if setup else [])


@contextmanager
def case_service(tmp: Path, depth: int) -> Iterator[Case]:
    yield _ours("service", {"name": "bench"})


@contextmanager
def case_service_process(tmp: Path, depth: int) -> Iterator[Case]:
    os.environ[agent_host.ENABLE_VAR] = "0"
    case = _ours("service", {"name": "bench"}, label="service as a process (host off)")
    case.host = False
    yield case


@contextmanager
def case_script(tmp: Path, depth: int) -> Iterator[Case]:
    lsb = tmp / "trivial-lsb"
    lsb.write_text(LSB)
    lsb.chmod(0o755)
    yield _ours("script", {"name": "bench", "file": str(lsb)},
                label="script (trivial LSB script)")


def _mount_case(agent: str) -> CaseFactory:
    @contextmanager
    def case(tmp: Path, depth: int) -> Iterator[Case]:
        with loop_fs(tmp) as (dev, mnt):
            c = _ours(agent, {"name": "bench", "device": dev, "mountpoint": str(mnt),
                              "fstype": "ext4"}, depth)
            try:
                yield c
            finally:
                for r in c.teardown:
                    run_action(r)
    return case


@contextmanager
def case_ip(tmp: Path, depth: int) -> Iterator[Case]:
    """Runs inside ``unshare -n`` (see :func:`run_case`)."""
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    sh("ip", "link", "set", "v0", "up")
    sh("ip", "link", "set", "v1", "up")
    sh("ip", "addr", "add", "10.200.0.1/24", "dev", "v0")
    c = _ours("ip", {"address": "10.200.0.10/24", "monitor_link": "1", "sleeptime": "0"}, depth)
    with _torn_down(c):
        yield c


@contextmanager
def case_nfsserver(tmp: Path, depth: int) -> Iterator[Case]:
    if "nfsd" not in Path("/proc/filesystems").read_text().split():
        raise Skip("this kernel has no NFS server (no nfsd file system in /proc/filesystems)")
    c = _ours("nfsserver", {"name": "bench", "path": str(tmp)})
    with _torn_down(c):
        yield c


@contextmanager
def case_nfsexport(tmp: Path, depth: int) -> Iterator[Case]:
    with case_nfsserver(tmp, 0):
        yield _ours("nfsexport", {"name": "bench", "path": str(tmp)})


@contextmanager
def case_nfsclient(tmp: Path, depth: int) -> Iterator[Case]:
    with case_nfsserver(tmp, 0):
        c = _ours("nfsclient", {"name": "bench", "target": "127.0.0.1", "path": str(tmp),
                                "options": "ro"})
        try:
            yield c
        finally:
            for r in c.teardown:
                run_action(r)


@contextmanager
def case_lvm(tmp: Path, depth: int) -> Iterator[Case]:
    with loop_fs(tmp) as (dev, _mnt):
        vg = f"benchvg{os.getpid()}"
        sh("pvcreate", "-qq", "-ff", "-y", dev)
        sh("vgcreate", "-qq", vg, dev)
        try:
            sh("lvcreate", "-qq", "-n", "lv", "-L", "8M", vg)
            c = _ours("lvm", {"name": "bench", "vg_name": vg, "lv_name": "lv"})
            try:
                yield c
            finally:
                for r in c.teardown:
                    run_action(r)
        finally:
            subprocess.run(["vgremove", "-qq", "-f", vg], capture_output=True, check=False)
            subprocess.run(["pvremove", "-qq", "-ff", "-y", dev], capture_output=True,
                           check=False)


#: name -> (case, depth, batch, needs a network namespace)
CASES: dict[str, tuple[CaseFactory, int, int, bool]] = {
    "floor": (case_floor, 0, 50, False),
    "dummy": (case_dummy, 0, 50, False),
    "service-process": (case_service_process, 0, 20, False),
    "service": (case_service, 0, 1000, False),
    "script": (case_script, 0, 300, False),
    "fs-0": (_mount_case("fs"), 0, 500, False),
    "fs-10": (_mount_case("fs"), 10, 500, False),
    "fs-20": (_mount_case("fs"), 20, 200, False),
    "clusterfs-0": (_mount_case("clusterfs"), 0, 500, False),
    "clusterfs-10": (_mount_case("clusterfs"), 10, 500, False),
    "clusterfs-20": (_mount_case("clusterfs"), 20, 200, False),
    "ip-0": (case_ip, 0, 500, True),
    "ip-10": (case_ip, 10, 500, True),
    "nfsserver": (case_nfsserver, 0, 300, False),
    "nfsexport": (case_nfsexport, 0, 300, False),
    "nfsclient": (case_nfsclient, 0, 300, False),
    "lvm": (case_lvm, 0, 50, False),
}


def run_one(name: str, repeats: int) -> Result:
    """In the case's own process: set up, measure, tear down; never raises for Skip."""
    func, depth, batch, _ = CASES[name]
    with tempfile.TemporaryDirectory(prefix="bench-status-") as d:
        tmp = Path(d)
        os.environ["HA_RSCTMP"] = str(tmp / "rsctmp")
        (tmp / "rsctmp").mkdir()
        try:
            with func(tmp, depth) as case:
                return measure(case, repeats, batch)
        except Skip as why:
            return Result(name, skipped=str(why))
        finally:
            executor.close_host_pool()


def run_case(name: str, repeats: int) -> Result:
    """Run one case in a child process (in a private netns if it needs one)."""
    argv = [sys.executable, "-m", "benchmarks.bench_status", "--case", name,
            "--repeats", str(repeats)]
    if CASES[name][3]:
        if shutil.which("unshare") is None or os.geteuid() != 0:
            return Result(name, skipped="needs root and unshare (network namespace)")
        argv = ["unshare", "-n", *argv]
    p = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return Result(name, skipped=f"case failed: {(p.stderr or p.stdout)[-300:]}")
    return Result(**json.loads(lines[-1]))


# --- report ---------------------------------------------------------------------------


def report(results: list[Result], loads: list[int]) -> None:
    head = (f"{'check':38} {'path':7} {'CPU ms/check min/median/max':>29} {'wall ms':>8} "
            f"{'interval':>8} " + " ".join(f"{'load N=' + format(n, ','):>13}" for n in loads))
    print(head)
    print("-" * len(head))
    for r in results:
        if r.skipped is not None:
            print(f"{r.label:38} skipped: {r.skipped}")
            continue
        cpu = sorted(r.cpu_ms)
        med = statistics.median(cpu)
        wall = statistics.median(r.wall_ms)
        interval = r.interval
        load = " ".join(f"{med / 1000 * n / interval * 100:12.2f}%" for n in loads)
        print(f"{r.label:38} {'host' if r.host else 'process':7} "
              f"{cpu[0]:9.3f} {med:9.3f} {cpu[-1]:9.3f} {wall:8.3f} {interval:7.0f}s {load}")
    print("\nload: median CPU per check x N checks per interval, in % of one core "
          "(daemon + agents; one check of this kind per service)")


def daemon_rss(services: int, watch: float) -> None:
    """The daemon's RSS with *services* started, measured after checks have run."""
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as d:
        tmp = Path(d)
        body = "".join(f'<service name="svc{i}"/>' for i in range(services))
        conf = tmp / "cluster.conf"
        conf.write_text('<?xml version="1.0"?><cluster name="b" config_version="1">'
                        '<clusternodes><clusternode name="node1" nodeid="1"/></clusternodes>'
                        f"<rm>{body}</rm></cluster>")
        (tmp / "rsc").mkdir()
        env = {**os.environ, "RGMANAGER_SOCKET": str(tmp / "s.sock"),
               "RGMANAGER_LOCK": str(tmp / "rgmanager.lock"), "HA_RSCTMP": str(tmp / "rsc"),
               "RGMANAGER_CACHE_DIR": str(tmp / "cache")}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rgmanager.cli.daemon_main", "-N", "-c",
                                 str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while True:
                r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "--json"],
                                   env=env, capture_output=True, text=True, check=False)
                if r.returncode == 0:
                    states = [s["state"] for s in json.loads(r.stdout)["services"]]
                    if len(states) == services and all(s == "started" for s in states):
                        break
                if proc.poll() is not None or time.perf_counter() - t0 > 600:
                    raise SystemExit("daemon did not start every service within 600 s")
                time.sleep(1)
            started = time.perf_counter() - t0
            time.sleep(watch)  # at least one status interval: every service checked
            rss = 0
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            print(f"daemon with {services} services started ({started:.1f} s) and watched "
                  f"for {watch:.0f} s: RSS {rss / 1024:.1f} MiB")
        finally:
            proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(600)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated case names: " + ",".join(CASES))
    ap.add_argument("--loads", default="1000,10000", help="N services for the load columns")
    ap.add_argument("--daemon", type=int, default=0, metavar="N",
                    help="also measure the daemon's RSS with N services")
    ap.add_argument("--watch", type=float, default=65.0,
                    help="seconds the daemon watches before RSS is read (>= one interval)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(asdict(run_one(args.case, args.repeats))))
        return 0
    names = [n for n in args.only.split(",") if n] or list(CASES)
    unknown = set(names) - set(CASES)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    results = []
    for name in names:
        r = run_case(name, args.repeats)
        results.append(r)
        print(f"  {name}: {'skipped' if r.skipped is not None else 'done'}", file=sys.stderr)
    report(results, [int(n) for n in args.loads.split(",") if n])
    if args.daemon:
        daemon_rss(args.daemon, args.watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
