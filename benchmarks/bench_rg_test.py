"""rg_test test CONF on generated cluster.conf files of several sizes.

Run: .venv/bin/python -m benchmarks.bench_rg_test [--sizes 1000,10000,50000] [--repeat 5]

For every size it reports, over ``--repeat`` runs, min/median/max of

* in-process: ``rg_test test CONF`` called as a function (rules from the warm
  meta-data cache, load + validate + build + render, output discarded), i.e.
  what the code costs without the interpreter's start;
* whole process: ``python -m rgmanager.cli.rg_test test CONF`` as a child,
  its wall time and its CPU (user + system of the child, from
  ``getrusage(RUSAGE_CHILDREN)``), i.e. what an administrator waits for;

and the per-resource cost of each, so that linearity shows: "marginal" is
the cost of each resource added since the previous size (microseconds; the
same figure at every size = linear; it leaves the interpreter's start out).
Wall time suffers from whatever else runs on the machine; CPU does not.
Goal (issue 12): linear up to 50,000 resources, at most 2 s there.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rgmanager.agents.discovery import load_rules
from rgmanager.cli import rg_test

PER_SERVICE = 10  # service, fs, fs, nfsexport, nfsclient, nfsclient, ip, script, lvm, fs


def generate(n_resources: int) -> str:
    services = max(1, n_resources // PER_SERVICE)
    out = ['<?xml version="1.0"?>', '<cluster name="bench" config_version="1">',
           "  <clusternodes>"]
    out += [f'    <clusternode name="node{i}" nodeid="{i}"/>' for i in range(1, 17)]
    out += ["  </clusternodes>", "  <rm>", "    <failoverdomains>"]
    for d in range(8):
        out.append(f'      <failoverdomain name="d{d}" ordered="1" restricted="1">')
        out += [f'        <failoverdomainnode name="node{d * 2 + k}" priority="{k}"/>'
                for k in (1, 2)]
        out.append("      </failoverdomain>")
    out += ["    </failoverdomains>", "    <resources>"]
    for s in range(services):
        out.append(f'      <fs name="data{s}" mountpoint="/srv/{s}" device="/dev/vg{s}/data"/>')
    out.append("    </resources>")
    for s in range(services):
        a, b = divmod(s, 250)
        out += [
            f'    <service name="svc{s}" domain="d{s % 8}" recovery="relocate">',
            f'      <lvm name="vg{s}" vg_name="vg{s}"/>',
            f'      <fs ref="data{s}">',
            f'        <fs name="sub{s}" mountpoint="/srv/{s}/sub" device="/dev/vg{s}/sub"/>',
            f'        <nfsexport name="exp{s}">',
            f'          <nfsclient name="c{s}a" target="10.1.0.0/16" options="rw"/>',
            f'          <nfsclient name="c{s}b" target="10.2.0.0/16" options="ro"/>',
            "        </nfsexport>",
            "      </fs>",
            f'      <fs name="log{s}" mountpoint="/var/log/{s}" device="/dev/vg{s}/log"/>',
            f'      <ip address="10.{100 + a // 250}.{a % 250}.{b + 1}"/>',
            f'      <script name="app{s}" file="/etc/init.d/app{s}"/>',
            "    </service>",
        ]
    out += ["  </rm>", "</cluster>", ""]
    return "\n".join(out)


@dataclass
class Figures:
    """Seconds per repeat of one measurement."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def line(self) -> str:
        return (f"min {min(self.runs):7.3f}  median {self.median:7.3f}  "
                f"max {max(self.runs):7.3f} s")


def in_process(conf: Path, repeat: int) -> Figures:
    """``rg_test test CONF`` as a function call, output discarded."""
    runs = []
    for _ in range(repeat):
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = rg_test.main(["test", str(conf)])
        runs.append(time.perf_counter() - t0)
        if code != 0:
            raise SystemExit(f"rg_test test {conf} exited {code}: {err.getvalue()[-500:]}")
        # rg_test freezes what it loaded (the process ends there); undo it so that
        # the next repeat starts from the same heap.
        gc.unfreeze()
        gc.collect()
    return Figures(runs)


def whole_process(conf: Path, repeat: int, env: dict[str, str]) -> tuple[Figures, Figures]:
    """Wall time and CPU (user + sys) of ``rg_test test CONF`` as a child process."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", "test", str(conf)],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return Figures(walls), Figures(cpus)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000",
                    help="comma-separated resource counts (default 1000,10000,50000)")
    ap.add_argument("--resources", type=int, help="one size only (older form)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sizes = [args.resources] if args.resources else [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        cache_dir = Path(d) / "cache"
        os.environ["RGMANAGER_CACHE_DIR"] = str(cache_dir)
        t0 = time.perf_counter()
        rules = load_rules(cache_path=cache_dir / "metadata.json")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_rules(cache_path=cache_dir / "metadata.json")
        warm = time.perf_counter() - t0
        env = {"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(cache_dir),
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        print(f"agent meta-data: cold cache {cold:.3f} s ({len(rules)} agents), "
              f"warm {warm:.4f} s; {args.repeat} repeats per figure")
        print(f"{'resources':>9}  {'measure':<20} {'figures':<48} {'us/res':>7} "
              f"{'marginal':>8}")
        previous: dict[str, tuple[int, float]] = {}
        for n in sizes:
            conf = Path(d) / f"cluster-{n}.conf"
            conf.write_text(generate(n))
            count = max(1, n // PER_SERVICE) * PER_SERVICE
            wall, cpu = whole_process(conf, args.repeat, env)
            rows = [("in-process", in_process(conf, args.repeat)),
                    ("process wall", wall), ("process CPU", cpu)]
            for name, fig in rows:
                per = fig.median / count * 1e6
                marginal = "-"
                if name in previous:
                    pn, pt = previous[name]
                    marginal = f"{(fig.median - pt) / (count - pn) * 1e6:.1f}"
                previous[name] = (count, fig.median)
                print(f"{count:>9}  {name:<20} {fig.line():<48} {per:7.1f} {marginal:>8}")
    print("goal: linear up to 50,000 resources (steady marginal cost), <= 2 s at 50,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
