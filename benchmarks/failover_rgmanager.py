"""rgmanager-py's half of the failover benchmark: three real corosync nodes.

Run (root): .venv/bin/python -m benchmarks.failover_rgmanager [--runs 5]
            [--token 500|1000] [--case member|coordinator] [--json FILE]

The lab is ``tests.cluster_lab``'s: three network namespaces on a bridge, one
corosync (token T, token_coefficient 0, hires log timestamps) and one
rgmanager per node, one witness service (a ``script`` resource whose LSB
script writes ``start SERVICE NODE TIME``) in an ordered failover domain,
and fencing through ``fence_netns`` - the lab's power switch - wrapped by the
same timing wrapper the Pacemaker side uses (``pacemaker_lab.fence_wrapper``),
so both sides pay for the same agent the same way.

Cases: ``member`` - the service prefers node2, then node3; node1 (lowest id)
is the coordinator that fences.  ``coordinator`` (``dc`` is accepted, the
Pacemaker side's word) - the service prefers node1, the coordinator itself;
node2 takes over both the fencing and the service.

A run SIGKILLs every process of the owner's namespace and measures, from that
instant (wall clock, the clock every log here uses):

- ``detected``: the first survivor's corosync logs the new membership;
- ``fence_start``/``fence_end``: the wrapper's record of the agent's run;
- ``started``: the witness script's start line on the heir;
- ``total``: the heir's rgmanager logs ``service:web: started on HEIR``.

Detection is corosync's, fencing the agent's; the rest - delivery of the
configuration change to rgmanager, the planner's decision, the fence
agent's launch, the ``NodeFenced`` message, the start of the script and its
bookkeeping - is our own part: ``total - detection - fencing``.

After each run the dead node boots again (corosync, then - once corosync
is part of the three-node ring again - rgmanager), the
service fails back to it (ordered domain, failback on) and the cluster is
left to settle before the next run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.pacemaker_lab import fence_calls, fence_wrapper, membership_times
from tests.cluster_lab import (
    FENCE_NETNS,
    CorosyncLab,
    RgmCluster,
    ordered_domain,
    probe,
    witness_service,
)

log = logging.getLogger(__name__)

SERVICE = "web"
TOKENS = (500, 1000)
CASES = ("member", "coordinator")
#: owner_kind -> the failover domain's order (owner first, then the heir).
ORDERS = {"member": (2, 3, 1), "coordinator": (1, 2, 3), "dc": (1, 2, 3)}
#: Keys of one run's dict: the fields of ``benchmarks.failover.Sample``.
FIELDS = ("total", "detected", "fence_start", "fence_end", "started")
PARTS = ("detection", "decision", "fencing", "recovery", "own part", "total")
POLL = 0.005
FAILOVER_TIMEOUT = 60.0
SETTLE_TIMEOUT = 90.0

_DAEMON_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def daemon_times(text: str, needle: str) -> list[float]:
    """Wall-clock times of the daemon log lines containing ``needle``."""
    times = []
    for line in text.splitlines():
        if needle not in line:
            continue
        m = _DAEMON_TIME.match(line)
        if m is not None:
            stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            times.append(stamp.timestamp() + int(m.group(2)) / 1000)
    return times


def parts(sample: dict[str, float | None]) -> dict[str, float | None]:
    """The parts of one run (None: not observed).  Own part = decision (the
    change reaching rgmanager, the plan, the agent's launch) + recovery
    (``NodeFenced``, the start, its bookkeeping) = total - detection - fencing."""
    d, fs, fe, t = (sample.get(k) for k in ("detected", "fence_start", "fence_end", "total"))
    fencing = fe - fs if fe is not None and fs is not None else None
    own = t - d - fencing if t is not None and d is not None and fencing is not None else None
    return {"detection": d,
            "decision": fs - d if fs is not None and d is not None else None,
            "fencing": fencing,
            "recovery": t - fe if t is not None and fe is not None else None,
            "own part": own, "total": t}


class RgmBench:
    """One three-node lab with rgmanager, set up for repeated kills of one owner."""

    def __init__(self, token: int, owner_kind: str) -> None:
        if owner_kind not in ORDERS:
            raise ValueError(f"owner_kind is one of {sorted(ORDERS)}")
        self.order = ORDERS[owner_kind]
        self.owner, self.heir = self.order[0], self.order[1]
        self.lab = CorosyncLab(3, token=token, show_netns=True)
        self.cluster: RgmCluster | None = None

    def __enter__(self) -> RgmBench:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.lab.close()

    @property
    def c(self) -> RgmCluster:
        assert self.cluster is not None
        return self.cluster

    def setup(self) -> None:
        lab = self.lab
        lab.setup(start=False)
        for node in lab.nodes.values():
            # hires: the membership lines carry milliseconds.
            node.conf.write_text(node.conf.read_text().replace(
                "timestamp: on", "timestamp: hires"))
        wrapper = lab.dir / "fence_netns"
        self.fence_log = lab.dir / "fence-calls.log"
        self.fence_log.touch()
        wrapper.write_text(fence_wrapper(FENCE_NETNS, self.fence_log))
        wrapper.chmod(0o755)
        body = (f"<failoverdomains>{ordered_domain('d', self.order)}</failoverdomains>"
                + witness_service(SERVICE, "{lsb}", "d"))
        self.cluster = RgmCluster(lab, body, fence_agent=wrapper, record=None)
        for i in lab.nodes:
            lab.start_node(i)
        lab.wait_quorate(list(lab.nodes), 3)
        # The owner first, alone: the initial placement does not race.
        self.c.start([self.owner])
        self.c.wait(lambda: self.c[self.owner].status().get("services"),
                    f"node{self.owner} up alone")
        self.c.start([i for i in lab.nodes if i != self.owner])
        self.settle()

    def settle(self) -> None:
        """Every node back in the group and agreeing that the service runs on its
        owner, whose script says so too (the failback is over)."""
        self.c.wait_settled([1, 2, 3], {SERVICE: self.owner}, timeout=SETTLE_TIMEOUT)

    def run_once(self) -> dict[str, float | None]:
        """Kill the owner's node, wait for the service on the heir, measure,
        boot the owner again and settle."""
        lab, c = self.lab, self.c
        heir_log = c[self.heir]
        needle = f"service:{SERVICE}: started on node{self.heir}"
        t_kill = time.time()
        lab.kill_node(self.owner)

        def seen() -> float | None:
            times = [t for t in daemon_times(heir_log.text(), needle) if t >= t_kill - 0.001]
            return times[0] if times else None

        t_seen = c.wait(seen, f"{SERVICE} started on node{self.heir}", FAILOVER_TIMEOUT)
        year = dt.date.today().year
        changes = sorted(t for i in lab.nodes if i != self.owner
                         for t in membership_times(lab.node(i).log_path().read_text(), year)
                         if t >= t_kill - 0.01)
        target = f"node{self.owner}"
        calls = [call for call in fence_calls(self.fence_log.read_text())
                 if call.action in ("reboot", "off") and call.target == target
                 and call.start >= t_kill]
        done = next((call for call in calls if call.rc == 0), None)
        started = [t for act, svc, node, t in c.events()
                   if (act, svc, node) == ("start", SERVICE, f"node{self.heir}") and t >= t_kill]
        sample: dict[str, float | None] = {
            "total": t_seen - t_kill,
            "detected": changes[0] - t_kill if changes else None,
            "fence_start": calls[0].start - t_kill if done else None,
            "fence_end": done.end - t_kill if done else None,
            "started": started[0] - t_kill if started else None,
        }
        lab.start_node(self.owner)
        # rgmanager only once corosync has merged with the ring: a daemon that
        # joins the group before that plans alone (see the report on the merge).
        lab.wait_quorate(list(lab.nodes), 3)
        c[self.owner].start()
        self.settle()
        return sample


def measure_rgmanager(runs: int, token: int, owner_kind: str) -> list[dict[str, Any]]:
    """``runs`` failovers on a fresh three-node lab at ``token`` ms.

    ``owner_kind``: ``member`` or ``coordinator`` (``dc``).  Each dict has the
    fields of ``benchmarks.failover.Sample`` (seconds after the kill, None
    when not observed): ``Sample(**d)`` builds one.
    """
    reason = probe()
    if reason:
        raise RuntimeError(f"cannot build a lab here: {reason}")
    samples = []
    with RgmBench(token, owner_kind) as bench:
        for k in range(runs):
            sample = bench.run_once()
            log.info("token %d %s run %d: %s", token, owner_kind, k + 1,
                     {p: None if v is None else round(v * 1000) for p, v in
                      parts(sample).items()})
            samples.append(sample)
    return samples


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def format_table(title: str, samples: Sequence[dict[str, float | None]]) -> str:
    """min/median/max in ms of each part."""
    lines = [f"{title} ({len(samples)} runs)",
             f"  {'part':<10} {'min':>7} {'median':>7} {'max':>7}  n"]
    for part in PARTS:
        seen: list[float] = sorted(v for v in (parts(s)[part] for s in samples)
                                   if v is not None)
        if not seen:
            lines.append(f"  {part:<10} {'-':>7} {'-':>7} {'-':>7}  0")
            continue
        lines.append(f"  {part:<10} {ms(seen[0]):>7} {ms(statistics.median(seen)):>7} "
                     f"{ms(seen[-1]):>7}  {len(seen)}")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.failover_rgmanager",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="failovers per case (default 5)")
    p.add_argument("--token", type=int, choices=TOKENS, action="append",
                   help="corosync token in ms (default: both)")
    p.add_argument("--case", choices=CASES, action="append",
                   help="whose node is killed (default: both)")
    p.add_argument("--json", type=Path, help="also write every run here")
    a = p.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    reason = probe()
    if reason:
        print(f"cannot build a lab here: {reason}", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, Any]]] = {}
    for token in a.token or TOKENS:
        for case in a.case or CASES:
            samples = measure_rgmanager(a.runs, token, case)
            results[f"{token}/{case}"] = samples
            print(format_table(f"rgmanager-py, token {token}, owner is the {case}", samples))
            print(flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
