"""Validation time against the number of a service's children (must be linear).

Run: .venv/bin/python -m benchmarks.bench_validate [--repeat N]

libxml2's RelaxNG validator is quadratic in an element's children and
multiplies with each optional attribute: a service with 11 attributes and 50
children took 9.5 s with the old generated grammar, 100 children 77 s. This
times ``load_config`` (parse + every check + RelaxNG) on such a service with
50, 100, 1,000 and 10,000 ``ip`` children and the same 11 service attributes,
plus a file with one misspelt attribute (which must be rejected just as fast).
Prints min/median/max over repeats.
Target: 1,000 children well under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rgmanager.agents.discovery import load_rules
from rgmanager.config.parser import load_config
from rgmanager.errors import ConfigError

SERVICE_ATTRS = ('name="big" domain="d" autostart="1" exclusive="0" recovery="restart" '
                 'max_restarts="3" restart_expire_time="300" depend_mode="soft" nfslock="0" '
                 'nfs_client_cache="0" priority="1"')


def generate(children: int, misspelt: bool = False) -> str:
    attrs = SERVICE_ATTRS + (' autostrat="1"' if misspelt else "")
    children = "\n".join(
        f'      <ip address="10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}" monitor_link="1"/>'
        for i in range(children))
    return f"""<?xml version="1.0"?>
<cluster name="bench" config_version="1">
  <clusternodes>
    <clusternode name="node1" nodeid="1"/>
    <clusternode name="node2" nodeid="2"/>
  </clusternodes>
  <rm>
    <failoverdomains>
      <failoverdomain name="d"><failoverdomainnode name="node1"/></failoverdomain>
    </failoverdomains>
    <service {attrs}>
{children}
    </service>
  </rm>
</cluster>
"""


def timed(path: Path, rules: object, repeat: int) -> tuple[list[float], str]:
    times: list[float] = []
    outcome = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            load_config(path, rules)  # type: ignore[arg-type]
            outcome = "valid"
        except ConfigError as err:
            first = err.reports[0]
            outcome = f"rejected: {first.code} line {first.source.line if first.source else '?'}"
        times.append(time.perf_counter() - t0)
    return times, outcome


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rules = load_rules()
    cases = [(n, False) for n in (50, 100, 1_000, 10_000)] + [(100, True), (1_000, True)]
    print(f"{'case':<46} {'min':>8} {'median':>8} {'max':>8}  outcome")
    worst_1000 = 0.0
    with tempfile.TemporaryDirectory() as d:
        for n, bad in cases:
            path = Path(d) / f"c{n}{'-bad' if bad else ''}.conf"
            path.write_text(generate(n, bad))
            times, outcome = timed(path, rules, args.repeat)
            label = f"11 attrs, {n:,} children" + (", misspelt attribute" if bad else "")
            print(f"{label:<46} {min(times):8.4f} {statistics.median(times):8.4f} "
                  f"{max(times):8.4f}  {outcome}")
            if n == 1_000:
                worst_1000 = max(worst_1000, max(times))
    print(f"(seconds, {args.repeat} repeats; target: 1,000 children well under 1 s: "
          f"{'met' if worst_1000 < 1 else 'MISSED'})")
    return 0 if worst_1000 < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
