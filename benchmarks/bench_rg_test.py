"""rg_test test CONF on a generated 10,000-resource cluster.conf.

Run: .venv/bin/python -m benchmarks.bench_rg_test [--resources N]
Prints the time to load + validate + build + render (meta-data comes from the
cache, which is warmed first and reported separately), and the wall time of
the whole `rg_test test` command. Target: < 1 s excluding meta-data.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from rgmanager.agents.discovery import load_rules
from rgmanager.cli.render import test_text
from rgmanager.loader import load

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "cluster.conf"
        conf.write_text(generate(args.resources))
        cache = Path(d) / "cache" / "metadata.json"
        t0 = time.perf_counter()
        rules = load_rules(cache_path=cache)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        rules = load_rules(cache_path=cache)
        warm = time.perf_counter() - t0
        best = float("inf")
        count = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            loaded = load(conf, rules)
            with redirect_stdout(io.StringIO()):
                sys.stdout.write(test_text(loaded.config, loaded.forest))
            best = min(best, time.perf_counter() - t0)
            count = len(loaded.forest.resources)
        env = {"PATH": "/usr/bin:/bin", "RGMANAGER_CACHE_DIR": str(cache.parent)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rgmanager.cli.rg_test", "test", str(conf)],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        cli = time.perf_counter() - t0
    print(f"resources in list:            {count}")
    print(f"agent meta-data, cold cache:  {cold:.3f} s ({len(rules)} agents)")
    print(f"agent meta-data, warm cache:  {warm:.4f} s")
    print(f"load+validate+build+render:   {best:.3f} s (best of {args.repeat}; target < 1 s)")
    print(f"rg_test test CONF (process):  {cli:.3f} s (includes interpreter start, warm cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
