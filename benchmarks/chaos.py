"""Chaos on a real cluster: randomized faults, then a verdict.

Run (root, corosync installed):

    .venv/bin/python -m benchmarks.chaos [--faults 200] [--seed S] [--nodes 3|5]
                                         [--token 1000] [--keep DIR] [--json FILE]

Builds ``--nodes`` corosync nodes in network namespaces running rgmanager-py
with five services (``benchmarks.chaos_lab``), then injects ``--faults``
faults one after the other, each chosen at random from ``FAULT_KINDS`` with
the printed seed: a whole node SIGKILLed, only rgmanager or only corosync
SIGKILLed, rgmanager SIGSTOPped past a status interval then SIGCONTed, a
node's link cut, a partition (1|2, and 2|3 on five nodes), a status check
that hangs past its timeout, a stop that fails, a clusvcadm request (-r,
-d/-e, -Z/-U) at another node in the middle of a node fault, and a reload
with a higher config_version. Whatever a fault killed comes back after a
random delay, as a rebooted machine would. Between faults the run waits for
a quiet point and reads every node's ``clustat --json``.

The verdict comes from ``benchmarks.chaos_check`` over the event log, the
power log (fences and crashes) and the quiet points: double-active, lost
services and disagreements must all be 0 (exit status 0), and recovery time
per fault kind is printed. At the end every process and namespace of the
run must be gone (checked). The same function drives the short CI test
(tests/test_chaos.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.chaos_check import (
    QuietPoint,
    Verdict,
    Window,
    check,
    parse_events,
    parse_power,
    summarize,
)
from benchmarks.chaos_lab import ChaosLab, services
from tests.cluster_lab import probe

log = logging.getLogger(__name__)

#: Fault kinds and their weights.
FAULT_KINDS: dict[str, int] = {
    "kill-node": 3, "kill-rgmanager": 2, "kill-corosync": 2, "sigstop-rgmanager": 2,
    "cut-link": 2, "partition": 2, "hang-status": 2, "fail-stop": 1, "admin": 2,
    "reload": 1, "reboot-isolated": 1,
}
#: Detection (token 1000: ~3.5 s) + fencing (~1 s) + a start + margin.
DEFAULT_ALLOWED = 20.0
#: How long the cluster may take to settle after a fault (a recovery takes ~10 s).
DEFAULT_SETTLE = 120.0


@dataclass
class Report:
    seed: int
    nodes: int
    token: int
    faults: Counter[str] = field(default_factory=Counter)
    verdict: Verdict = field(default_factory=Verdict)
    unsettled: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.unsettled and not self.leftovers \
            and not self.tracebacks

    def text(self) -> str:
        v = self.verdict
        lines = [f"chaos: seed {self.seed}, {self.nodes} nodes, token {self.token}, "
                 f"{sum(self.faults.values())} faults in {self.seconds:.0f} s",
                 f"  double-active: {len(v.double_active)}   lost services: {len(v.lost)}   "
                 f"disagreements: {len(v.disagreements)}   unsettled: {len(self.unsettled)}   "
                 f"tracebacks: {len(self.tracebacks)}   left behind: {len(self.leftovers)}",
                 "",
                 f"  {'fault':<18} {'count':>5} {'recovered':>9} {'min s':>7} {'median':>7} "
                 f"{'max s':>7}"]
        stats = summarize(v.recovery)
        for kind in FAULT_KINDS:
            if not self.faults.get(kind):
                continue
            n, lo, med, hi = stats.get(kind, (0, 0.0, 0.0, 0.0))
            cells = (f"{lo:7.2f} {med:7.2f} {hi:7.2f}" if n else f"{'-':>7} {'-':>7} {'-':>7}")
            lines.append(f"  {kind:<18} {self.faults[kind]:>5} {n:>9} {cells}")
        for title, items in (("double-active", v.double_active), ("lost", v.lost),
                             ("disagreement", v.disagreements), ("unsettled", self.unsettled),
                             ("traceback in", self.tracebacks),
                             ("left behind", self.leftovers)):
            for item in items:
                lines.append(f"  {title}: {item}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        v = self.verdict
        return {"seed": self.seed, "nodes": self.nodes, "token": self.token,
                "faults": dict(self.faults), "seconds": self.seconds,
                "recovery": {k: list(s) for k, s in summarize(v.recovery).items()},
                "double_active": [str(x) for x in v.double_active],
                "lost": [str(x) for x in v.lost],
                "disagreements": [str(x) for x in v.disagreements],
                "unsettled": self.unsettled, "tracebacks": self.tracebacks,
                "leftovers": self.leftovers, "journal": self.journal}


@dataclass(frozen=True)
class Admin:
    """An administrator's request made in the middle of a node fault."""

    what: str  # relocate, disable (then enable), freeze (then unfreeze)
    service: str
    text: str


class Chaos:
    """One chaos run over a started ``ChaosLab``."""

    def __init__(self, lab: ChaosLab, rng: random.Random, kinds: Sequence[str] | None = None,
                 stop_early: bool = False, settle: float = 120.0) -> None:
        self.lab = lab
        self.settle = settle  # seconds to wait for a quiet point, or a node to be back
        self.stop_early = stop_early  # end the run at the first unsettled quiet point
        self.rng = rng
        names = list(kinds or FAULT_KINDS)
        self.kinds = names
        self.weights = [FAULT_KINDS[k] for k in names]
        self.points: list[QuietPoint] = []
        self.unsettled: list[str] = []
        self.counts: Counter[str] = Counter()
        self.depends_on = {"db": ["app"]}  # app depends on db (chaos_lab.services)

    # ------------------------------------------------------------ helpers

    def delay(self, low: float = 1.0, high: float = 6.0) -> None:
        """A random delay: how long a fault lasts, how long a reboot takes."""
        time.sleep(self.rng.uniform(low, high))

    def node(self, exclude: Sequence[str] = ()) -> str:
        return self.rng.choice([n for n in self.lab.names if n not in exclude])

    def service(self, with_subtree: bool = False) -> str:
        names = [s.name for s in services(self.lab.n)]
        if with_subtree:
            names += [s.subtree for s in services(self.lab.n) if s.subtree]
        return self.rng.choice(names)

    def excuse(self, service: str, start: float, why: str) -> None:
        end = time.time()
        for name in [service, *self.depends_on.get(service, [])]:
            self.lab.service_windows.append(Window(name, start, end, why))

    def quiet_point(self, label: str) -> None:
        # A node fenced late for the last fault (after it was seen back) is
        # rebooted while the harness waits for the quiet point.
        deadline = time.monotonic() + self.settle
        got = None
        while got is None and time.monotonic() < deadline:
            for node in self.lab.names:
                if self.lab.needs_repair(node):
                    if not self.lab.holder_up(node):
                        self.delay(1.0, 5.0)
                    self.lab.note(f"repair {node} (late): {self.lab.repair(node)}")
            got = self.lab.quiet(timeout=max(1.0, min(15.0, deadline - time.monotonic())))
        if got is None:
            views = {n: self.lab.table(self.lab.status(n)) for n in self.lab.names}
            self.unsettled.append(
                f"after {label}: no quiet point in {self.settle:.0f} s; tables {views}")
            self.lab.note(f"UNSETTLED after {label}")
            if len({json.dumps(tb, sort_keys=True) for tb in views.values()}) > 1:
                self.points.append(QuietPoint(time.time(), views))
            return
        t, tables = got
        for node, view in tables.items():
            st = self.lab.status(node)
            view = dict(view)
            view["#config_version"] = (str(st.get("cluster", {}).get("config_version")), None)
            tables[node] = view
        self.points.append(QuietPoint(t, tables))

    def repair_all(self, fault_t: float, targets: Sequence[str]) -> None:
        """Bring back whatever is dead (after a random delay) and close the
        affected nodes' windows once every other node sees them again."""
        hit = [n for n in self.lab.names if n in targets or self.lab.needs_repair(n)]
        for node in hit:
            if self.lab.needs_repair(node):
                if not self.lab.holder_up(node):
                    self.delay(1.0, 5.0)  # the machine reboots
                did = self.lab.repair(node)
                self.lab.note(f"repair {node}: {did}")
        for node in hit:
            # A node brought back may still be fenced for the fault (its corosync
            # left while it owned services): then it is rebooted again.
            deadline = time.monotonic() + self.settle
            back = None
            while back is None:
                if self.lab.needs_repair(node):
                    if not self.lab.holder_up(node):
                        self.delay(1.0, 5.0)
                    self.lab.note(f"repair {node} again: {self.lab.repair(node)}")
                left = deadline - time.monotonic()
                try:
                    back = self.lab.wait_member(node, timeout=max(1.0, min(10.0, left)))
                except TimeoutError as err:
                    if left <= 10.0:
                        back = time.time()
                        self.unsettled.append(f"{node} not back: {err}")
            self.lab.node_windows.append(Window(node, fault_t, back, "fault"))

    # ------------------------------------------------------------- faults

    def run(self, faults: int) -> None:
        """``faults`` random faults, a quiet point after each."""
        self.quiet_point("start")
        for k in range(faults):
            kind = self.rng.choices(self.kinds, self.weights)[0]
            self.step(kind)
            self.quiet_point(f"fault {k + 1} ({kind})")
            if self.stop_early and self.unsettled:
                self.lab.note("stopping early: the cluster did not settle")
                return

    def run_steps(self, steps: Sequence[str]) -> None:
        """A pinned sequence: ``KIND[:TARGET]`` each (TARGET a node, ``node1+node2``
        for a partition, a service for hang-status/fail-stop, ``BASE/REQUEST/SERVICE``
        for admin, e.g. ``kill-node/disable/db``); delays still come from the seed."""
        self.quiet_point("start")
        for k, text in enumerate(steps):
            kind, _, target = text.partition(":")
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r} in {text!r}")
            self.step(kind, target or None)
            self.quiet_point(f"step {k + 1} ({text})")

    def step(self, kind: str, target: str | None = None) -> None:
        self.counts[kind] += 1
        getattr(self, "do_" + kind.replace("-", "_"))(target)

    def pick_node(self, target: str | None) -> str:
        return target if target else self.node()

    def do_kill_node(self, target: str | None = None, admin: Admin | None = None) -> None:
        node = self.pick_node(target)
        f = self.lab.fault("kill-node" if admin is None else "admin", [node],
                           detail=admin.text if admin else "")
        self.lab.crash(node)
        self.during(admin)
        self.repair_all(f.t, [node])

    def do_kill_rgmanager(self, target: str | None = None, admin: Admin | None = None
                          ) -> None:
        node = self.pick_node(target)
        f = self.lab.fault("kill-rgmanager" if admin is None else "admin", [node],
                           detail=admin.text if admin else "")
        self.lab.kill_rgmanager(node)
        self.during(admin)
        self.repair_all(f.t, [node])

    def do_reboot_isolated(self, target: str | None = None) -> None:
        """A node crashes and boots again with its link down (the network comes up
        after corosync and rgmanager): its link is healed once its rgmanager has
        joined the group of its lone corosync."""
        node = self.pick_node(target)
        f = self.lab.fault("reboot-isolated", [node])
        self.lab.crash(node)
        self.lab.cut(node)
        # The others fence the crashed node first (else that fence would kill the
        # node booting here): up to 30 s for the power log to say so.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                p.node == node and p.how == "fence" and p.t >= f.t
                for p in parse_power(self.lab.power_log.read_text(errors="replace"))):
            time.sleep(0.1)
        try:
            self.lab.repair(node)
            self.lab.note(f"repair {node}: reboot with the link cut")
            log_path = self.lab.daemon_log(node)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "joined CPG group" not in \
                    log_path.read_text(errors="replace"):
                time.sleep(0.1)
            self.delay(0.5, 2.0)
        finally:
            self.lab.heal(node)
        self.repair_all(f.t, [node])

    def do_kill_corosync(self, target: str | None = None) -> None:
        node = self.pick_node(target)
        f = self.lab.fault("kill-corosync", [node])
        self.lab.kill_corosync(node)
        self.delay()
        self.repair_all(f.t, [node])

    def do_sigstop_rgmanager(self, target: str | None = None) -> None:
        node = self.pick_node(target)
        f = self.lab.fault("sigstop-rgmanager", [node])
        self.lab.sigstop(node)
        self.delay(2.5, 8.0)  # longer than a status interval (2 s)
        self.lab.sigcont(node)
        self.repair_all(f.t, [node])

    def do_cut_link(self, target: str | None = None, admin: Admin | None = None) -> None:
        node = self.pick_node(target)
        f = self.lab.fault("cut-link" if admin is None else "admin", [node],
                           detail=admin.text if admin else "")
        self.lab.cut(node)
        self.during(admin)
        self.delay(2.0, 8.0)
        self.lab.heal(node)
        self.repair_all(f.t, [node])

    def do_partition(self, target: str | None = None) -> None:
        if target:
            minority = target.split("+")
        else:
            size = self.rng.choice([1, 2]) if self.lab.n >= 5 else 1
            minority = self.rng.sample(self.lab.names, size)
        size = len(minority)
        f = self.lab.fault("partition", minority, detail=f"{size}|{self.lab.n - size}")
        self.lab.partition(minority)
        self.delay(3.0, 10.0)
        self.lab.unpartition(minority)
        self.repair_all(f.t, minority)

    def do_hang_status(self, target: str | None = None) -> None:
        service = target or self.service(with_subtree=True)
        self.lab.fault("hang-status", services=[service])
        mark = self.lab.event_size()
        self.lab.set_fault_file(service, "hang", True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                text = self.lab.events.read_bytes()[mark:].decode(errors="replace")
                if any(e.service == service and e.kind in ("stop", "stopfail")
                       for e in parse_events(text)):
                    break
                time.sleep(0.2)
        finally:
            self.lab.set_fault_file(service, "hang", False)

    def do_fail_stop(self, target: str | None = None) -> None:
        service = target or self.service()
        f = self.lab.fault("fail-stop", services=[service])
        self.lab.set_fault_file(service, "failstop", True)
        try:
            self.lab.clusvcadm(self.node(), "-r", f"service:{service}")

            def failed() -> bool:
                return any(self.lab.table(self.lab.status(n)).get(f"service:{service}",
                                                                  ("", None))[0] == "failed"
                           for n in self.lab.names)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not failed():
                time.sleep(0.3)
        finally:
            self.lab.set_fault_file(service, "failstop", False)
        node = self.node()
        self.lab.clusvcadm(node, "-d", f"service:{service}")
        self.lab.clusvcadm(node, "-e", f"service:{service}", "-F")
        self.excuse(service, f.t, "stop failed on purpose")

    def do_admin(self, target: str | None = None) -> None:
        """A clusvcadm request at another node in the middle of a node fault."""
        if target:
            base, what, service = target.split("/")
        else:
            base = self.rng.choice(["kill-node", "kill-rgmanager", "cut-link"])
            what = self.rng.choice(["relocate", "disable", "freeze"])
            service = self.service()
        victim = self.node()
        admin = Admin(what, service, f"{base}/{what}/{service} (victim {victim})")
        getattr(self, "do_" + base.replace("-", "_"))(victim, admin=admin)

    def admin_request(self, admin: Admin) -> None:
        victims = [n for n in self.lab.names if self.lab.needs_repair(n)]
        victims += list(self.lab.faults[-1].nodes)
        node = self.node(exclude=victims)
        name = f"service:{admin.service}"
        t = time.time()
        if admin.what == "relocate":
            self.lab.clusvcadm(node, "-r", name, "-m", self.node())
        elif admin.what == "disable":
            self.lab.clusvcadm(node, "-d", name)
            self.delay(0.5, 3.0)
            self.lab.clusvcadm(self.node(exclude=victims), "-e", name, "-F")
            self.excuse(admin.service, t, "disabled by the administrator")
        else:
            self.lab.clusvcadm(node, "-Z", name)
            self.delay(0.5, 3.0)
            self.lab.clusvcadm(self.node(exclude=victims), "-U", name)
            self.excuse(admin.service, t, "frozen by the administrator")

    def during(self, admin: Admin | None) -> None:
        self.delay(0.5, 2.0)
        if admin is not None:
            self.admin_request(admin)
        self.delay(0.5, 4.0)

    def do_reload(self, target: str | None = None) -> None:
        node = self.pick_node(target)
        self.lab.fault("reload", [node], detail=f"config_version {self.lab.version + 1}")
        self.lab.reload(node)


def verdict_of(lab: ChaosLab, chaos: Chaos, allowed: float) -> Verdict:
    events = parse_events(lab.events.read_text(errors="replace"))
    power = parse_power(lab.power_log.read_text(errors="replace"))
    begin = chaos.points[0].t if chaos.points else lab.t0
    end = chaos.points[-1].t if chaos.points else time.time()
    return check(events, power, lab.faults, chaos.points, lab.specs(), lab.names,
                 lab.node_windows, lab.service_windows, begin, end, allowed)


def keep_logs(lab: ChaosLab, keep: Path) -> None:
    """Copy the run's regular files (logs, configs; not sockets) to ``keep``."""
    for path in lab.lab.dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            dest = keep / path.relative_to(lab.lab.dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(path, dest)


def run_chaos(faults: int, seed: int, nodes: int = 3, token: int = 1000,
              allowed: float = DEFAULT_ALLOWED, keep: Path | None = None,
              kinds: Sequence[str] | None = None, steps: Sequence[str] | None = None,
              stop_early: bool = False, settle: float = DEFAULT_SETTLE) -> Report:
    """Build the lab, inject ``faults`` random faults (or the pinned ``steps``), judge,
    tear down, check that nothing is left behind."""
    rng = random.Random(seed)
    report = Report(seed, nodes, token)
    t0 = time.monotonic()
    lab = ChaosLab(nodes, token=token)
    try:
        lab.setup()
        chaos = Chaos(lab, rng, kinds, stop_early, settle)
        try:
            if steps:
                chaos.run_steps(steps)
            else:
                chaos.run(faults)
        finally:
            report.faults = chaos.counts
            report.unsettled = chaos.unsettled
            report.journal = lab.journal
            report.verdict = verdict_of(lab, chaos, allowed)
            report.tracebacks = lab.traceback_logs()
            if keep is not None:
                keep_logs(lab, keep)
    finally:
        lab.close()
        report.leftovers = lab.leftovers()
        report.seconds = time.monotonic() - t0
    return report


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--faults", type=int, default=200, help="number of faults (default 200)")
    p.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    p.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    p.add_argument("--token", type=int, default=1000,
                   help="totem token in ms (default 1000: 500 flaps on 2 busy cores)")
    p.add_argument("--allowed", type=float, default=DEFAULT_ALLOWED,
                   help="seconds a service may run nowhere before it counts as lost")
    p.add_argument("--kind", action="append", choices=list(FAULT_KINDS),
                   help="only these fault kinds (default: all)")
    p.add_argument("--steps", help="a pinned fault sequence instead of random faults: "
                   "KIND[:TARGET],... (e.g. kill-node:node1,partition:node2)")
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE,
                   help="seconds the cluster may take to settle after a fault (default 120)")
    p.add_argument("--stop-early", action="store_true",
                   help="end the run at the first fault after which the cluster did not settle")
    p.add_argument("--keep", type=Path, help="copy the run's logs to this directory")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    reason = probe()
    if reason:
        print(f"chaos: cannot build a lab here: {reason}", file=sys.stderr)
        return 2
    seed = a.seed if a.seed is not None else int(time.time()) % 1_000_000
    print(f"chaos: seed {seed}", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    report = run_chaos(a.faults, seed, a.nodes, a.token, a.allowed, a.keep, a.kind,
                       a.steps.split(",") if a.steps else None, a.stop_early,
                       a.settle)
    print(report.text())
    if a.json:
        a.json.write_text(json.dumps(report.as_json(), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
