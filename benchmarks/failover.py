"""Failover time on three real corosync nodes, rgmanager-py beside Pacemaker.

Run (root): .venv/bin/python -m benchmarks.failover [--runs 5] [--vs-pacemaker]
            [--token 500|1000] [--case member|dc] [--json FILE]

A run SIGKILLs every process of the node that owns the service (a crash:
corosync, the manager, everything) and measures, from that instant, until
the service is seen running on another node. Two cases: the owner is a
plain member, and the owner is the node that decides (Pacemaker's DC; our
coordinator). Each token setting (500 ms with token_coefficient 0, and
1000 ms) gets a fresh three-node lab. After a run the dead node is booted
again and the cluster allowed to settle before the next.

Each run is split, where it can be observed, into parts measured from the
kill (all wall-clock, the clock the logs use):

- detection: the survivors' corosync logs the new membership (hires
  timestamps) — the same engine and settings on both sides;
- decision: from there to the fence agent being started;
- fencing: the fence agent's own run (the same ``fence_netns`` both sides);
- recovery: from the end of fencing until the service is seen running;
- own part: decision + recovery, what the manager itself adds;
- total.

Pacemaker's side (``--vs-pacemaker``, installs Debian's pacemaker if it is
missing): ``benchmarks.pacemaker_lab``; "seen running" is ``crm_resource
--locate`` on a survivor naming a survivor, polled every 20 ms once the Dummy
agent's state file has appeared on a survivor (polled every 5 ms: cheap, so
the polling does not steal the CPU the cluster needs). ``agent start`` is that
file's mtime.

Both token settings use token_coefficient 0 (the lab's corosync.conf), so
detection is about 2x the token (about 1.05 s at 500 ms, 2.1 s at 1000 ms).

What to expect of Pacemaker's "decision": either about 50-150 ms or about
1.05 s. When the DC asks for the CIB to run the scheduler while other CIB
updates are still pending (here: the node-loss updates it has just sent),
pacemaker-controld sleeps one second and asks again (``sleep(1)`` in
``do_pe_invoke_callback``); whether that happens depends on the order of
the updates, so about half the runs pay it. It is Pacemaker's own cost,
not the lab's.

rgmanager-py's side is ``measure_rgmanager`` (``benchmarks.failover_rgmanager``). The tables
print each side's min/median/max per part, then both medians and the ratio
ours/Pacemaker for each case and token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from benchmarks.pacemaker_lab import (
    RESOURCE,
    PacemakerLab,
    Status,
    ensure_installed,
    fence_calls,
    membership_times,
    why_not,
)
from tests.cluster_lab import wait_for

log = logging.getLogger(__name__)

TOKENS = (500, 1000)
CASES = ("member", "dc")
CASE_TITLES = {"member": "owner is a plain member",
               "dc": "owner is the decider (Pacemaker's DC / our coordinator)"}
STATE_POLL = 0.005
LOCATE_POLL = 0.02
FAILOVER_TIMEOUT = 120.0


@dataclass(frozen=True)
class Sample:
    """One failover; every time is seconds after the kill (None: not observed)."""

    total: float
    detected: float | None = None
    fence_start: float | None = None
    fence_end: float | None = None
    started: float | None = None  # the resource agent's start, when visible

    def parts(self) -> dict[str, float | None]:
        d, fs, fe, t = self.detected, self.fence_start, self.fence_end, self.total
        fencing = fe - fs if fe is not None and fs is not None else None
        own = t - d - fencing if d is not None and fencing is not None else None
        return {
            "detection": d,
            "decision": fs - d if fs is not None and d is not None else None,
            "fencing": fencing,
            "recovery": t - fe if fe is not None else None,
            "own part": own,
            "agent start": self.started,
            "total": t,
        }


PARTS = tuple(Sample(0.0).parts())


@dataclass(frozen=True)
class Summary:
    n: int
    low: float
    median: float
    high: float


def summarize(values: Iterable[float | None]) -> Summary | None:
    """min/median/max of the observed values (None when nothing was observed)."""
    seen = sorted(v for v in values if v is not None)
    if not seen:
        return None
    return Summary(len(seen), seen[0], statistics.median(seen), seen[-1])


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    """ours/theirs as ``0.42x`` ("-" when either is missing or theirs is 0)."""
    if ours is None or theirs is None or theirs <= 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def format_table(title: str, samples: Sequence[Sample]) -> str:
    """min/median/max in ms per part of one side's runs of one case."""
    lines = [f"{title} ({len(samples)} runs)",
             f"  {'part':<12} {'min':>7} {'median':>7} {'max':>7}  n"]
    for part in PARTS:
        s = summarize(sample.parts()[part] for sample in samples)
        if s is None:
            lines.append(f"  {part:<12} {'-':>7} {'-':>7} {'-':>7}  0")
        else:
            lines.append(f"  {part:<12} {ms(s.low):>7} {ms(s.median):>7} {ms(s.high):>7}"
                         f"  {s.n}")
    return "\n".join(lines)


def median_of(samples: Sequence[Sample] | None, part: str) -> float | None:
    if not samples:
        return None
    s = summarize(sample.parts()[part] for sample in samples)
    return s.median if s else None


Results = dict[tuple[int, str], list[Sample]]


def _order(key: tuple[int, str]) -> tuple[int, int]:
    """Token, then the cases in the order of ``CASES``."""
    token, case = key
    return token, CASES.index(case) if case in CASES else len(CASES)


def format_comparison(ours: Results, theirs: Results) -> str:
    """Medians side by side and ours/Pacemaker, per token and case."""
    lines = ["median ms      token case    ours total  pcmk total  ratio   "
             "ours own  pcmk own"]
    for key in sorted(set(ours) | set(theirs), key=_order):
        token, case = key
        o, t = ours.get(key), theirs.get(key)
        ot, tt = median_of(o, "total"), median_of(t, "total")
        oo, to = median_of(o, "own part"), median_of(t, "own part")
        lines.append(f"{'':<14} {token:>5} {case:<7} {ms(ot):>10}  {ms(tt):>10}  "
                     f"{ratio(ot, tt):>6}  {ms(oo):>8}  {ms(to):>8}")
    return "\n".join(lines)


# ------------------------------------------------------- observing a failover

def read_from(path: Path, offset: int) -> str:
    """A log's text after ``offset`` bytes (what one run added)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def sample_from_logs(t_kill: float, t_seen: float, corosync_text: str, fence_text: str,
                     target: str, started: float | None = None) -> Sample:
    """One run's Sample from a survivor's corosync log (hires timestamps) and the
    fence wrapper's log (``pacemaker_lab.fence_wrapper``), both as written after
    the kill; all times are wall-clock seconds.

    Fencing runs from the first off/reboot attempt on ``target`` to the end of
    the first that succeeded (retries count as fencing).
    """
    year = time.localtime(t_kill).tm_year
    changes = [t for t in membership_times(corosync_text, year) if t >= t_kill - 0.01]
    attempts = [c for c in fence_calls(fence_text)
                if c.action in ("reboot", "off") and c.target == target and c.start >= t_kill]
    done = next((c for c in attempts if c.rc == 0), None)
    return Sample(
        total=t_seen - t_kill,
        detected=changes[0] - t_kill if changes else None,
        fence_start=attempts[0].start - t_kill if done else None,
        fence_end=done.end - t_kill if done else None,
        started=started - t_kill if started is not None else None)


# ------------------------------------------------------------------ rgmanager

def measure_rgmanager(runs: int, token: int, owner_kind: str) -> list[Sample]:
    """rgmanager-py's failover on the corosync lab (``benchmarks.failover_rgmanager``):
    the same three namespace nodes, totem settings and fence agent."""
    from benchmarks.failover_rgmanager import measure_rgmanager as measure

    return [Sample(**d) for d in measure(runs, token, owner_kind)]


# ------------------------------------------------------------------ Pacemaker

def pacemaker_run(lab: PacemakerLab, owner_kind: str) -> Sample:
    """One Pacemaker failover of ``d1`` in ``lab`` (a started PacemakerLab)."""
    everyone = len(lab.names)

    def whole(s: Status) -> bool:
        return (s.dc is not None and s.quorate and s.owner is not None
                and len(s.online) == everyone)

    st = lab.wait_status(whole, FAILOVER_TIMEOUT, "a whole cluster")
    assert st.dc is not None and st.owner is not None
    if owner_kind == "member" and st.owner == st.dc:
        lab.move_to(min(n for n in st.online if n != st.dc))
    elif owner_kind == "dc" and st.owner != st.dc:
        lab.move_to(st.dc)
    st = lab.wait_status(whole, FAILOVER_TIMEOUT, "a whole cluster")
    assert st.owner is not None
    if (st.owner == st.dc) != (owner_kind == "dc"):
        raise RuntimeError(f"wanted owner_kind={owner_kind}, got {st}")
    victim = lab.number(st.owner)
    survivors = [i for i in lab.up_nodes() if i != victim]
    observer = survivors[0]
    names = {lab.names[i] for i in survivors}
    states = [lab.corosync.node(i).dir / "run" / f"Dummy-{RESOURCE}.state" for i in survivors]
    if any(p.exists() for p in states):
        raise RuntimeError(f"{RESOURCE} state file already on a survivor: {states}")
    corosync_log = lab.corosync.node(observer).log_path()
    corosync_mark = corosync_log.stat().st_size
    fence_mark = lab.fence_log.stat().st_size
    log.info("killing %s (%s); DC %s", st.owner, owner_kind, st.dc)

    t_kill = lab.kill_node(victim)
    state = wait_for(lambda: next((p for p in states if p.exists()), None), FAILOVER_TIMEOUT,
                     f"{RESOURCE} started on a survivor", interval=STATE_POLL)
    wait_for(lambda: lab.locate(observer) in names, FAILOVER_TIMEOUT,
             "crm_resource --locate naming a survivor", interval=LOCATE_POLL)
    t_seen = time.time()

    sample = sample_from_logs(t_kill, t_seen, read_from(corosync_log, corosync_mark),
                              read_from(lab.fence_log, fence_mark), st.owner,
                              started=state.stat().st_mtime)
    log.info("%s back on %s after %s ms (%s)", RESOURCE, lab.locate(observer),
             ms(sample.total), {k: ms(v) for k, v in sample.parts().items()})
    lab.restart_node(victim)
    return sample


def measure_pacemaker_cases(runs: int, token: int, cases: Sequence[str]) -> Results:
    """Every case at one token setting, in one Pacemaker lab."""
    ensure_installed()
    reason = why_not()
    if reason:
        raise RuntimeError(f"cannot build the Pacemaker lab here: {reason}")
    results: Results = {}
    lab = PacemakerLab(3, token=token)
    try:
        t0 = time.monotonic()
        with lab:
            log.info("Pacemaker lab up at token %d in %.1f s (%s)", token,
                     time.monotonic() - t0, lab.corosync.dir)
            for case in cases:
                results[(token, case)] = [pacemaker_run(lab, case) for _ in range(runs)]
    finally:
        left = lab.leftovers()
        if left:
            log.error("left behind after teardown: %s", left)
    if left:
        raise RuntimeError(f"the Pacemaker lab left things behind: {left}")
    return results


def measure_pacemaker(runs: int, token: int, owner_kind: str) -> list[Sample]:
    return measure_pacemaker_cases(runs, token, [owner_kind])[(token, owner_kind)]


# ------------------------------------------------------------------------ CLI

def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _collect(label: str, measure: Callable[[int, str], list[Sample]], tokens: Sequence[int],
             cases: Sequence[str]) -> Results:
    results: Results = {}
    for token in tokens:
        for case in cases:
            try:
                results[(token, case)] = measure(token, case)
            except NotImplementedError as err:
                print(f"{label}: not measured ({err})")
                return results
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__
                                .split("\n", 1)[0])
    p.add_argument("--runs", type=int, default=5, help="runs per case and token (default 5)")
    p.add_argument("--vs-pacemaker", action="store_true",
                   help="also measure Debian's Pacemaker on the same lab (installs it)")
    p.add_argument("--token", type=int, choices=TOKENS, action="append",
                   help="totem token in ms (default: both)")
    p.add_argument("--case", choices=CASES, action="append", help="default: both")
    p.add_argument("--json", type=Path, help="also write every sample to this file")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.runs < 1:
        p.error("--runs must be at least 1")
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    tokens = tuple(a.token or TOKENS)
    cases = tuple(a.case or CASES)

    load_before = os.getloadavg()[0]
    try:
        ours = _collect("rgmanager-py", lambda t, c: measure_rgmanager(a.runs, t, c), tokens,
                        cases)
        theirs: Results = {}
        if a.vs_pacemaker:
            for token in tokens:
                theirs.update(measure_pacemaker_cases(a.runs, token, cases))
    except KeyboardInterrupt as err:
        print(f"interrupted ({err or 'Ctrl-C'}); the labs were torn down", file=sys.stderr)
        return 130

    for label, results in (("rgmanager-py", ours), ("Pacemaker 2.1", theirs)):
        for (token, case), samples in sorted(results.items(), key=lambda kv: _order(kv[0])):
            print(format_table(f"{label}, token {token}, {CASE_TITLES[case]}", samples))
            print()
    if ours or theirs:
        print(format_comparison(ours, theirs))
    host = (f"host: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end")
    print(host)
    if a.json:
        a.json.write_text(json.dumps(
            {side: [{"token": t, "case": c, "samples": [asdict(s) for s in ss]}
                    for (t, c), ss in sorted(res.items())]
             for side, res in (("rgmanager-py", ours), ("pacemaker", theirs))}
            | {"host": host}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
