"""Status-check cost and daemon memory.

Run: .venv/bin/python -m benchmarks.bench_status [--resources 1000] [--services 1000]

1. CPU seconds per status check, 1,000 resources checked, for a built-in
   agent (our Python `service` agent) and for an LSB init script run by the
   `script` agent: user+system time of this process and its children over one
   forced status pass of every resource, divided by the number of checks.
2. The daemon's RSS (VmRSS) with 1,000 services started and watched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rgmanager.agents.discovery import load_rules
from rgmanager.loader import load
from rgmanager.monitor import StatusChecker
from rgmanager.treeops import TreeOps

LSB = """#!/bin/sh
case "$1" in
start|stop) exit 0 ;;
status) [ -e "$HA_RSCTMP/up" ] && exit 0; exit 3 ;;
esac
"""


def conf(services: int, lsb: Path | None) -> str:
    body = []
    for i in range(services):
        inner = f'<script name="s{i}" file="{lsb}.{i}"/>' if lsb else ""
        body.append(f'<service name="svc{i}">{inner}</service>')
    return ('<?xml version="1.0"?><cluster name="b" config_version="1"><clusternodes>'
            '<clusternode name="node1" nodeid="1"/></clusternodes>'
            f'<rm status_poll_interval="30">{"".join(body)}</rm></cluster>')


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def per_check(tmp: Path, n: int, with_lsb: bool) -> tuple[float, float, int]:
    rsctmp = tmp / ("rsc-lsb" if with_lsb else "rsc")
    rsctmp.mkdir()
    (rsctmp / "up").touch()
    lsb = None
    if with_lsb:
        lsb = tmp / "lsb"
        lsb.write_text(LSB)
        lsb.chmod(0o755)
        for i in range(n):
            os.symlink(lsb, f"{lsb}.{i}")
    path = tmp / f"c{int(with_lsb)}.conf"
    path.write_text(conf(n, lsb))
    loaded = load(path, load_rules())
    ops = TreeOps(extra_env={"HA_RSCTMP": str(rsctmp)})
    if not with_lsb:  # the service agent's status reads its "started" marker
        for top in loaded.forest.services:
            ops.run(top, "start")
    checker = StatusChecker(ops)
    checked = 0
    c0, w0 = cpu(), time.perf_counter()
    for top in loaded.forest.services:
        nodes = [top.children[0]] if with_lsb else [top]
        for node in nodes:
            rec = ops.run(node, "status", 0)
            assert rec.result is not None and rec.result.ok, rec.result
            checked += 1
    c1, w1 = cpu(), time.perf_counter()
    del checker
    return (c1 - c0) / checked, (w1 - w0) / checked, checked


def daemon_rss(tmp: Path, services: int) -> tuple[int, float]:
    path = tmp / "big.conf"
    path.write_text(conf(services, None))
    sock = tmp / "s.sock"
    env = {**os.environ, "RGMANAGER_SOCKET": str(sock), "HA_RSCTMP": str(tmp / "drsc"),
           "RGMANAGER_CACHE_DIR": str(tmp / "cache")}
    (tmp / "drsc").mkdir()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rgmanager.cli.daemon_main", "-N", "-c",
                             str(path)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "--json"],
                               env=env, capture_output=True, text=True)
            if r.returncode == 0:
                states = [s["state"] for s in json.loads(r.stdout)["services"]]
                if len(states) == services and all(s == "started" for s in states):
                    break
            if time.perf_counter() - t0 > 600:
                raise SystemExit("daemon did not start every service within 600 s")
            time.sleep(1)
        elapsed = time.perf_counter() - t0
        time.sleep(2)
        rss = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return rss, elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(600)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--services", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cpu_b, wall_b, n_b = per_check(tmp, args.resources, with_lsb=False)
        print(f"built-in agent (service), {n_b} status checks: "
              f"{cpu_b * 1000:.1f} ms CPU/check, {wall_b * 1000:.1f} ms wall/check")
        cpu_l, wall_l, n_l = per_check(tmp, args.resources, with_lsb=True)
        print(f"LSB script via script agent, {n_l} status checks: "
              f"{cpu_l * 1000:.1f} ms CPU/check, {wall_l * 1000:.1f} ms wall/check")
        rss, took = daemon_rss(tmp, args.services)
        print(f"daemon with {args.services} services started and watched: "
              f"RSS {rss / 1024:.1f} MiB (all started after {took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
