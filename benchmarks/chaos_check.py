"""The chaos checker: pure functions over what a chaos run recorded.

A chaos run (``benchmarks.chaos``) leaves four records behind, and this
module judges them without touching a cluster, so every rule can be tested
with small synthetic logs:

- the **event log**: one line per service action the LSB scripts really did,
  ``start SERVICE NODE TIME`` (written when the start *begins*),
  ``stop SERVICE NODE TIME`` (written when a stop has *succeeded*) or
  ``stopfail SERVICE NODE TIME``; TIME is CLOCK_REALTIME seconds with
  nanoseconds, the same clock in every namespace;
- the **power log**: when a node was switched off, by the fence agent
  (``fence``) or by the harness crashing it (``crash``). Processes die then,
  so a run on that node ends there even without a ``stop`` line;
- the **faults** the harness injected (kind, time, nodes, services);
- **windows** in which a node could not run anything (down, cut off, in a
  minority, its rgmanager dead or stopped) or a service was not supposed to
  run (disabled, frozen, failed by an injected stop failure);
- **quiet points**: every live node's ``clustat --json`` table, read when the
  cluster had settled.

Why pure functions: the checker decides whether the product is safe, so it
must itself be easy to trust; the harness only records.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Event kinds an LSB script writes.
EVENT_KINDS = ("start", "stop", "stopfail")


@dataclass(frozen=True)
class Event:
    """One line of the event log."""

    kind: str
    service: str
    node: str
    t: float


@dataclass(frozen=True)
class PowerOff:
    """A node switched off at ``t`` (``how``: fence or crash)."""

    node: str
    t: float
    how: str = "fence"


@dataclass(frozen=True)
class Run:
    """A service running on a node from ``start`` to ``end`` (None: still running)."""

    service: str
    node: str
    start: float
    end: float | None
    ended_by: str = ""  # stop, fence, crash or "" while running


@dataclass(frozen=True)
class Window:
    """[start, end) during which ``subject`` (a node or a service) is excused."""

    subject: str
    start: float
    end: float
    why: str = ""

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind, when, on what."""

    kind: str
    t: float
    nodes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class DoubleActive:
    service: str
    a: Run
    b: Run
    overlap: float

    def __str__(self) -> str:
        return (f"{self.service} ran on {self.a.node} [{self.a.start:.3f}, {_end(self.a)}] and "
                f"on {self.b.node} [{self.b.start:.3f}, {_end(self.b)}]: "
                + ("at once until the end of the run" if self.overlap == float("inf")
                   else f"{self.overlap:.3f}s at once"))


@dataclass(frozen=True)
class Lost:
    service: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def __str__(self) -> str:
        return (f"{self.service} ran nowhere for {self.length:.1f}s "
                f"[{self.start:.3f}, {self.end:.3f}] while an eligible node was up")


@dataclass(frozen=True)
class Disagreement:
    t: float
    tables: Mapping[str, Mapping[str, tuple[str, str | None]]]

    def __str__(self) -> str:
        return f"at {self.t:.3f} the nodes' tables differ: {dict(self.tables)}"


@dataclass(frozen=True)
class QuietPoint:
    """Every answering node's table ``{service: (state, owner)}`` at ``t``."""

    t: float
    tables: Mapping[str, Mapping[str, tuple[str, str | None]]]


@dataclass(frozen=True)
class ServiceSpec:
    """What the checker needs to know about a configured service."""

    name: str
    autostart: bool = True
    eligible: tuple[str, ...] = ()  # empty: every node
    exclusive: bool = False


@dataclass
class Verdict:
    double_active: list[DoubleActive] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    recovery: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.double_active or self.lost or self.disagreements)


def _end(run: Run) -> str:
    return "running" if run.end is None else f"{run.end:.3f}"


# ------------------------------------------------------------------ parsing

def parse_events(text: str) -> list[Event]:
    """Event-log lines -> events in time order; a torn or foreign line is skipped
    (a node killed in the middle of a write may leave half a line)."""
    events = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 4 or words[0] not in EVENT_KINDS:
            continue
        try:
            t = float(words[3])
        except ValueError:
            continue
        events.append(Event(words[0], words[1], words[2], t))
    return sorted(events, key=lambda e: e.t)


def parse_power(text: str) -> list[PowerOff]:
    """Power-log lines ``fence|crash NODE T_END [...]`` (rc 0 only for fences)."""
    offs = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] not in ("fence", "crash"):
            continue
        if words[0] == "fence" and len(words) >= 5 and words[4] != "0":
            continue  # a failed fence switched nothing off
        try:
            offs.append(PowerOff(words[1], float(words[2]), words[0]))
        except ValueError:
            continue
    return sorted(offs, key=lambda p: p.t)


# ------------------------------------------------------------------- runs

def runs(events: Iterable[Event], power: Iterable[PowerOff]) -> list[Run]:
    """Each service's runs: from a ``start`` on a node to that node's next
    successful ``stop``, or to the node being switched off, whichever is first.
    A second start on a node already running the service continues its run."""
    offs: dict[str, list[float]] = {}
    for p in power:
        offs.setdefault(p.node, []).append(p.t)
    for ts in offs.values():
        ts.sort()
    open_runs: dict[tuple[str, str], tuple[float, str]] = {}
    out: list[Run] = []

    def power_off_between(node: str, a: float, b: float | None) -> float | None:
        for t in offs.get(node, ()):
            if t >= a and (b is None or t <= b):
                return t
        return None

    for e in sorted(events, key=lambda e: e.t):
        key = (e.service, e.node)
        if e.kind == "start":
            if key in open_runs:
                t0, _ = open_runs[key]
                off = power_off_between(e.node, t0, e.t)
                if off is None:
                    continue  # still the same run
                out.append(Run(e.service, e.node, t0, off, "power"))
            open_runs[key] = (e.t, "")
        elif e.kind == "stop" and key in open_runs:
            t0, _ = open_runs.pop(key)
            off = power_off_between(e.node, t0, e.t)
            out.append(Run(e.service, e.node, t0, e.t if off is None else off,
                           "stop" if off is None else "power"))
    for (service, node), (t0, _) in open_runs.items():
        off = power_off_between(node, t0, None)
        out.append(Run(service, node, t0, off, "power" if off is not None else ""))
    return sorted(out, key=lambda r: (r.service, r.start))


def double_active(all_runs: Sequence[Run], slack: float = 0.0) -> list[DoubleActive]:
    """Pairs of runs of one service on two nodes that overlap by more than ``slack``."""
    found = []
    by_service: dict[str, list[Run]] = {}
    for r in all_runs:
        by_service.setdefault(r.service, []).append(r)
    inf = float("inf")
    for service, rs in sorted(by_service.items()):
        rs = sorted(rs, key=lambda r: r.start)
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if b.start >= (a.end if a.end is not None else inf):
                    break
                if a.node == b.node:
                    continue
                overlap = min(a.end if a.end is not None else inf,
                              b.end if b.end is not None else inf) - b.start
                if overlap > slack:
                    found.append(DoubleActive(service, a, b, overlap))
    return found


# ---------------------------------------------------------------- lost services

def _covered(windows: Iterable[Window], subject: str, t: float) -> bool:
    return any(w.subject == subject and w.covers(t) for w in windows)


def lost_services(all_runs: Sequence[Run], specs: Sequence[ServiceSpec],
                  nodes: Sequence[str], node_windows: Sequence[Window],
                  service_windows: Sequence[Window], begin: float, end: float,
                  allowed: float) -> list[Lost]:
    """Stretches longer than ``allowed`` seconds in [begin, end) where an autostart
    service ran nowhere, was not excused (``service_windows``: disabled, frozen,
    failed on purpose), and one of its eligible nodes was available (not inside
    one of its ``node_windows``). An exclusive service needs every node available
    (it may only take an empty node; with one node gone there may be none)."""
    found: list[Lost] = []
    cuts = {begin, end}
    for r in all_runs:
        cuts.update(t for t in (r.start, r.end) if t is not None and begin < t < end)
    for w in (*node_windows, *service_windows):
        cuts.update(t for t in (w.start, w.end) if begin < t < end)
    points = sorted(cuts)
    for spec in specs:
        if not spec.autostart:
            continue
        eligible = spec.eligible or tuple(nodes)
        mine = [r for r in all_runs if r.service == spec.name]
        gap_start: float | None = None
        for a, b in zip(points, points[1:], strict=False):
            mid = (a + b) / 2
            running = any(r.start <= mid and (r.end is None or mid < r.end) for r in mine)
            up = [n for n in (nodes if spec.exclusive else eligible)
                  if not _covered(node_windows, n, mid)]
            needed = len(up) == len(nodes) if spec.exclusive else bool(up)
            should = (not running and needed
                      and not _covered(service_windows, spec.name, mid))
            if should and gap_start is None:
                gap_start = a
            elif not should and gap_start is not None:
                if a - gap_start > allowed:
                    found.append(Lost(spec.name, gap_start, a))
                gap_start = None
        if gap_start is not None and end - gap_start > allowed:
            found.append(Lost(spec.name, gap_start, end))
    return found


# ---------------------------------------------------------------- recovery

def recovery_times(faults: Sequence[Fault], all_runs: Sequence[Run],
                   end: float) -> dict[str, list[float]]:
    """Per fault kind, the time from each fault to the last of the services it
    interrupted running again (a service is interrupted when one of its runs ended
    between this fault and the next one). Faults that interrupted nothing, or
    whose services did not come back before the next fault, add no sample."""
    out: dict[str, list[float]] = {}
    ordered = sorted(faults, key=lambda f: f.t)
    for i, f in enumerate(ordered):
        nxt = ordered[i + 1].t if i + 1 < len(ordered) else end
        hit = {r.service for r in all_runs
               if r.end is not None and f.t <= r.end < nxt}
        if not hit:
            continue
        back = []
        for service in hit:
            last_end = max(r.end for r in all_runs if r.service == service
                           and r.end is not None and f.t <= r.end < nxt)
            again = [r.start for r in all_runs
                     if r.service == service and last_end <= r.start < nxt]
            running_elsewhere = any(
                r.service == service and r.start < last_end
                and (r.end is None or r.end > last_end) for r in all_runs)
            if again:
                back.append(min(again))
            elif running_elsewhere:
                back.append(last_end)
            else:
                back = []
                break
        if back:
            out.setdefault(f.kind, []).append(max(back) - f.t)
    return out


def summarize(samples: Mapping[str, Sequence[float]]) -> dict[str, tuple[int, float, float,
                                                                        float]]:
    """kind -> (n, min, median, max)."""
    return {k: (len(v), min(v), statistics.median(v), max(v))
            for k, v in sorted(samples.items()) if v}


# ------------------------------------------------------------- disagreement

def disagreements(points: Iterable[QuietPoint]) -> list[Disagreement]:
    """Quiet points at which not every node showed the same table."""
    found = []
    for p in points:
        tables = list(p.tables.values())
        if any(t != tables[0] for t in tables[1:]):
            found.append(Disagreement(p.t, p.tables))
    return found


# --------------------------------------------------------------------- all

def check(events: Sequence[Event], power: Sequence[PowerOff], faults: Sequence[Fault],
          points: Sequence[QuietPoint], specs: Sequence[ServiceSpec], nodes: Sequence[str],
          node_windows: Sequence[Window], service_windows: Sequence[Window],
          begin: float, end: float, allowed: float) -> Verdict:
    """Every rule over one run's records."""
    rs = runs(events, power)
    return Verdict(double_active=double_active(rs),
                   lost=lost_services(rs, specs, nodes, node_windows, service_windows,
                                      begin, end, allowed),
                   disagreements=disagreements(points),
                   recovery=recovery_times(faults, rs, end))
