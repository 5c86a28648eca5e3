"""The real daemon with N services: start, steady-state CPU and check timing, stop.

Run: .venv/bin/python -m benchmarks.bench_daemon [--services 1000] [--minutes 2]
     [--source DIR]

Each service holds one ``script`` resource on a trivial LSB script (default
intervals: the script's status every 30 s, the service's own every 60 s).
The daemon runs as ``rgmanager -c CONF`` on the embedded single-node
backend, with its lock file, control socket, HA_RSCTMP and logs in a
temporary directory.  Measured:

* start: from launching the daemon until ``clustat --json`` shows all N
  services started;
* steady state, over ``--minutes`` after that: CPU of the daemon and all its
  children (utime+stime from /proc for the live process tree, plus the
  daemon's cutime+cstime, which hold every child it has reaped), as a share
  of one core, per 10 s slice (min/median/max) and overall;
* checks: the LSB script appends /proc/uptime (a shell builtin read, no
  extra fork) to one file per service at every ``status``; from those, the
  number of script checks in the window against the number due, services
  never checked, and the gap between consecutive checks of one service
  against its 30 s interval (min/median/p95/max, share within 10 %);
* the daemon's log lines saying a check was skipped;
* stop: from SIGTERM until the daemon has exited (it stops every service);
* for context, the fork+exec floor: CPU of spawning ``/bin/true``.

``--source DIR`` runs the daemon (and clustat) from another source tree via
PYTHONPATH, e.g. a copy with a change not yet in this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT_INTERVAL = 30.0  # the script agent's default status interval
TICK = os.sysconf("SC_CLK_TCK")

LSB = """#!/bin/sh
# trivial LSB script: one marker per service; status logs when it was asked
d={dir}
n=${{0##*/}}
case "$1" in
start) : > "$d/$n.on"; exit 0 ;;
stop) [ -e "$d/$n.on" ] && rm -f "$d/$n.on"; exit 0 ;;
status)
    read -r up _ < /proc/uptime
    echo "$up" >> "$d/$n.log"
    [ -e "$d/$n.on" ] && exit 0
    exit 3 ;;
esac
exit 0
"""


def uptime() -> float:
    """The clock the LSB script logs with (CLOCK_BOOTTIME, 10 ms steps)."""
    return float(Path("/proc/uptime").read_text().split()[0])


def write_conf(tmp: Path, n: int) -> Path:
    marks = tmp / "marks"
    marks.mkdir()
    lsb = tmp / "lsb"
    lsb.write_text(LSB.format(dir=marks))
    lsb.chmod(0o755)
    links = tmp / "init.d"
    links.mkdir()
    body = []
    for i in range(n):
        link = links / f"s{i}"
        link.symlink_to(lsb)
        body.append(f'<service name="svc{i}"><script name="s{i}" file="{link}"/></service>')
    conf = tmp / "cluster.conf"
    conf.write_text('<?xml version="1.0"?><cluster name="bench" config_version="1">'
                    '<clusternodes><clusternode name="node1" nodeid="1"/></clusternodes>'
                    f'<rm>{"".join(body)}</rm></cluster>')
    return conf


# -- CPU of a process tree -----------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    ppid: int
    own: int  # utime + stime, ticks
    reaped: int  # cutime + cstime: children it has waited for, ticks


def read_stats() -> dict[int, Stat]:
    stats: dict[int, Stat] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        f = raw[raw.rindex(")") + 2:].split()
        stats[int(entry.name)] = Stat(int(f[1]), int(f[11]) + int(f[12]),
                                      int(f[13]) + int(f[14]))
    return stats


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root``, its live descendants and every
    descendant already reaped (counted in its reaper's cutime/cstime)."""
    stats = read_stats()
    kids: dict[int, list[int]] = {}
    for pid, st in stats.items():
        kids.setdefault(st.ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        found = stats.get(pid)
        if found is None:
            continue
        total += found.own + found.reaped
        stack.extend(kids.get(pid, ()))
    return total / TICK


# -- the fork+exec floor ---------------------------------------------------------------
def spawn_floor(batches: int = 5, per_batch: int = 200) -> list[float]:
    """CPU seconds per ``/bin/true`` (the child's own plus ours to spawn it)."""
    out = []
    for _ in range(batches):
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(per_batch):
            pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
            os.waitpid(pid, 0)
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (me1.ru_utime - me0.ru_utime + me1.ru_stime - me0.ru_stime
               + ch1.ru_utime - ch0.ru_utime + ch1.ru_stime - ch0.ru_stime)
        out.append(cpu / per_batch)
    return out


# -- the daemon --------------------------------------------------------------------------
def all_started(env: dict[str, str], n: int) -> bool:
    r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "--json"], env=env,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return False
    states = [s["state"] for s in json.loads(r.stdout)["services"]]
    return len(states) == n and all(s == "started" for s in states)


def status_times(marks: Path, n: int) -> dict[str, list[float]]:
    times = {}
    for i in range(n):
        log = marks / f"s{i}.log"
        times[f"s{i}"] = [float(x) for x in log.read_text().split()] if log.exists() else []
    return times


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"min {min(values):.2f}, median {statistics.median(values):.2f}, "
            f"max {max(values):.2f}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n: int, minutes: float, source: str | None, timeout: float) -> dict[str, object]:
    result: dict[str, object] = {"services": n, "minutes": minutes}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as d:
        tmp = Path(d)
        conf = write_conf(tmp, n)
        (tmp / "rsc").mkdir()
        env = {**os.environ, "RGMANAGER_SOCKET": str(tmp / "rgmanager.sock"),
               "RGMANAGER_LOCK": str(tmp / "rgmanager.pid"), "HA_RSCTMP": str(tmp / "rsc"),
               "RGMANAGER_CACHE_DIR": str(tmp / "cache")}
        if source:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [source,
                                                              env.get("PYTHONPATH")]))
        daemon = str(Path(sys.executable).with_name("rgmanager"))
        errlog = tmp / "daemon.log"
        t0 = time.monotonic()
        with open(errlog, "wb") as err:
            proc = subprocess.Popen([daemon, "-c", str(conf)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            while not all_started(env, n):
                if proc.poll() is not None:
                    raise SystemExit(f"daemon exited {proc.returncode}:\n"
                                     + errlog.read_text()[-2000:])
                if time.monotonic() - t0 > timeout:
                    raise SystemExit(f"not all {n} services started within {timeout:.0f} s")
                time.sleep(0.5)  # the clustat probe itself costs ~0.2 s of CPU
            result["start_s"] = time.monotonic() - t0
            print(f"start: all {n} services started after {result['start_s']:.1f} s",
                  flush=True)

            # steady window, in 10 s slices
            w0, c0 = uptime(), tree_cpu(proc.pid)
            slices: list[float] = []
            end = w0 + minutes * 60
            last_u, last_c = w0, c0
            while True:
                now = uptime()
                if now >= end:
                    break
                time.sleep(min(10.0, end - now))
                u, c = uptime(), tree_cpu(proc.pid)
                if u - last_u >= 5:
                    slices.append((c - last_c) / (u - last_u))
                last_u, last_c = u, c
            w1, c1 = last_u, last_c
            share = (c1 - c0) / (w1 - w0)
            result["cpu_share"] = share
            result["cpu_slices"] = slices
            print(f"steady {w1 - w0:.0f} s: daemon + agents {100 * share:.1f} % "
                  f"of one core; per 10 s slice (%): "
                  f"{spread([100 * s for s in slices])}", flush=True)

            times = status_times(tmp / "marks", n)
            in_window = {s: [t for t in ts if w0 <= t <= w1] for s, ts in times.items()}
            checks = sum(len(ts) for ts in in_window.values())
            due = n * (w1 - w0) / SCRIPT_INTERVAL
            never = sum(1 for ts in in_window.values() if not ts)
            gaps = [b - a for ts in times.values() for a, b in zip(ts, ts[1:], strict=False)
                    if w0 <= b <= w1]
            late = [g for g in gaps if g > SCRIPT_INTERVAL * 1.1]
            result.update(checks=checks, checks_due=due, never_checked=never,
                          gaps=len(gaps), gap_min=min(gaps, default=0),
                          gap_median=statistics.median(gaps) if gaps else 0,
                          gap_p95=percentile(gaps, 0.95) if gaps else 0,
                          gap_max=max(gaps, default=0), gaps_late=len(late))
            print(f"script checks in the window: {checks} (due about {due:.0f}); "
                  f"services never checked: {never}", flush=True)
            if gaps:
                print(f"gap between checks of one service (interval {SCRIPT_INTERVAL:.0f} s): "
                      f"min {result['gap_min']:.1f}, median {result['gap_median']:.1f}, "
                      f"p95 {result['gap_p95']:.1f}, max {result['gap_max']:.1f} s; "
                      f"{len(gaps) - len(late)}/{len(gaps)} within 10 %", flush=True)
        finally:
            s0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            result["stop_s"] = time.monotonic() - s0
        left = len(list((tmp / "marks").glob("*.on")))
        log_text = errlog.read_text(errors="replace")
        result["skipped_log_lines"] = log_text.count("skipped")
        result["still_marked_running"] = left
        print(f"stop: SIGTERM to exit {result['stop_s']:.1f} s (exit {proc.returncode}; "
              f"{left} scripts still marked running)", flush=True)
        print(f"daemon log lines saying 'skipped': {result['skipped_log_lines']}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=2.0,
                    help="steady-state window after all are started (default 2)")
    ap.add_argument("--source", help="run the daemon from this source tree (PYTHONPATH)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="give up starting or stopping after this many seconds")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    floor = spawn_floor()
    print(f"fork+exec floor (/bin/true, ours + child's CPU), ms: "
          f"{spread([1000 * f for f in floor])}", flush=True)
    result = run(args.services, args.minutes, args.source, args.timeout)
    result["spawn_floor_ms"] = statistics.median(floor) * 1000
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
