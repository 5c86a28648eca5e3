"""The monitor's one timer heap: checks run at their due time, none is
skipped, one service's checks never overlap, and the pool bounds how many
run at once.

These run real threads on the real monotonic clock with 1 s intervals (the
smallest an agent can declare), so each test takes a few seconds; checks are
recorded, not run by agents (what an agent does is tested elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager import monitor as monitor_mod
from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import ActionRule, ParamRule, ResourceRule
from rgmanager.executor import ActionRequest, ActionResult
from rgmanager.loader import load
from rgmanager.monitor import Monitor, StatusChecker
from rgmanager.tree.model import Node
from rgmanager.treeops import TreeOps

from .conftest import HEADER
from .manager_helpers import wait_for

NAME = ParamRule("name", primary=True, unique=True, required=True)


def rules(shallow: int, deep: int) -> RuleSet:
    return RuleSet.from_rules([
        ResourceRule("service", "/x/service", "/x", (NAME,), (ActionRule("start", 5),)),
        ResourceRule("app", "/x/app", "/x", (NAME,), (
            ActionRule("start", 5), ActionRule("stop", 5),
            ActionRule("status", 5, shallow, 0), ActionRule("status", 5, deep, 20))),
    ])


def services(tmp_path: Path, n: int, shallow: int = 1, deep: int = 3) -> list[Node]:
    body = "".join(f'<service name="s{i}"><app name="a{i}"/></service>' for i in range(n))
    conf = tmp_path / "c.conf"
    conf.write_text(HEADER + f"<rm>{body}</rm></cluster>")
    return list(load(conf, rules(shallow, deep)).forest.services)


class Recorder:
    """A runner that records (service, depth, start, end) and can be held."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.lock = threading.Lock()
        self.runs: list[tuple[str, int, float, float]] = []
        self.active: set[str] = set()
        self.overlaps = 0
        self.peak = 0

    def __call__(self, req: ActionRequest) -> ActionResult:
        name = req.params["name"]
        with self.lock:
            if name in self.active:
                self.overlaps += 1
            self.active.add(name)
            self.peak = max(self.peak, len(self.active))
        t0 = time.monotonic()
        if self.duration:
            time.sleep(self.duration)  # the agent's own run time
        with self.lock:
            self.active.discard(name)
            self.runs.append((name, req.check_level, t0, time.monotonic()))
        return ActionResult(0, 0, "", False, 0.0)

    def starts(self, name: str, depth: int | None = None) -> list[float]:
        with self.lock:
            return [t for n, d, t, _ in self.runs if n == name and depth in (None, d)]


@pytest.fixture
def made() -> Iterator[list[Monitor]]:
    monitors: list[Monitor] = []
    yield monitors
    for m in monitors:
        m.shutdown()


def ticker(checker: StatusChecker, by_name: dict[str, Node]) -> Callable[[str], None]:
    """The manager's tick, minus its locks and table."""
    def tick(service: str) -> None:
        checker.check(by_name[service], set())
    return tick


def wire(tops: list[Node], recorder: Recorder, workers: int, made: list[Monitor]
         ) -> tuple[Monitor, StatusChecker]:
    """A monitor driving a StatusChecker as the manager does."""
    checker = StatusChecker(TreeOps(recorder))
    by_name = {t.name: t for t in tops}
    mon = Monitor(10, ticker(checker, by_name),
                  next_due=lambda s: checker.next_due(by_name[s]), workers=workers)
    made.append(mon)
    for t in tops:
        checker.reset(t.name)
    return mon, checker


def test_every_check_runs_within_ten_percent_of_its_interval(
        tmp_path: Path, made: list[Monitor]) -> None:
    tops = services(tmp_path, 40)
    rec = Recorder(duration=0.005)
    t0 = time.monotonic()  # just before the resets (the "starts")
    mon, _ = wire(tops, rec, workers=8, made=made)
    mon.start()
    for t in tops:
        mon.watch(t.name)
    names = [f"a{i}" for i in range(40)]
    assert wait_for(lambda: all(len(rec.starts(n)) >= 4 for n in names), timeout=20)
    mon.shutdown()
    assert rec.overlaps == 0 and rec.peak <= 8
    for n in names:
        starts = rec.starts(n)
        # first check one interval after the start (reset), then every interval
        assert 1.0 <= starts[0] - t0 <= 1.1, (n, starts[0] - t0)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # (measured where the runner starts, a moment after the checker's
        # own stamp: hence the small allowance below 1.0)
        assert all(0.98 <= g <= 1.1 for g in gaps), (n, gaps)
        # the deep check (3 s) replaced the shallow one at 3 s
        assert rec.starts(n, 20), n


def test_a_due_check_waits_for_a_worker_instead_of_being_skipped(
        tmp_path: Path, made: list[Monitor]) -> None:
    tops = services(tmp_path, 6)
    gate = threading.Event()
    rec = Recorder()
    inner = rec.__call__

    def held(req: ActionRequest) -> ActionResult:
        if req.params["name"] == "a0":
            gate.wait(30)
        return inner(req)

    checker = StatusChecker(TreeOps(held))
    by_name = {t.name: t for t in tops}
    mon = Monitor(10, ticker(checker, by_name),
                  next_due=lambda s: checker.next_due(by_name[s]), workers=2)
    made.append(mon)
    for t in tops:
        checker.reset(t.name)
    mon.start()
    for t in tops:
        mon.watch(t.name)
    # a0 holds one worker; the five others share the second one
    assert wait_for(lambda: all(rec.starts(f"a{i}") for i in range(1, 6)), timeout=10)
    assert not rec.starts("a0")
    gate.set()
    assert wait_for(lambda: bool(rec.starts("a0")), timeout=10)
    # a0's turn ran late but ran; nothing was dropped on the way
    assert wait_for(lambda: all(len(rec.starts(f"a{i}")) >= 2 for i in range(6)), timeout=10)
    assert rec.overlaps == 0 and rec.peak <= 2


def test_a_tick_that_checked_nothing_is_retried_soon_not_spun(
        tmp_path: Path, made: list[Monitor], monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager's tick returns at once while a start/stop holds the
    service: the next try comes RETRY_BUSY later, not in a busy loop."""
    monkeypatch.setattr(monitor_mod, "RETRY_BUSY", 0.3)
    tries: list[float] = []
    due = time.monotonic()
    mon = Monitor(10, lambda s: tries.append(time.monotonic()), next_due=lambda s: due)
    made.append(mon)
    mon.start()
    mon.watch("service:s")
    assert wait_for(lambda: len(tries) >= 3, timeout=5)
    mon.shutdown()
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert all(0.3 <= g < 0.5 for g in gaps), gaps


def test_watch_is_idempotent_and_unwatch_stops_checks(
        tmp_path: Path, made: list[Monitor]) -> None:
    tops = services(tmp_path, 2)
    rec = Recorder()
    mon, _ = wire(tops, rec, workers=2, made=made)
    mon.start()
    for _ in range(3):  # the manager re-applies watches after every delivery
        mon.watch("service:s0")
        mon.watch("service:s1")
    assert mon.watched() == ["service:s0", "service:s1"]
    assert wait_for(lambda: bool(rec.starts("a0") and rec.starts("a1")), timeout=5)
    assert len(rec.starts("a0")) == 1  # three watches, one schedule
    mon.unwatch("service:s0")
    assert mon.watched() == ["service:s1"] and mon.due("service:s0") is None
    n0 = len(rec.starts("a0"))
    assert wait_for(lambda: len(rec.starts("a1")) >= 3, timeout=5)
    assert len(rec.starts("a0")) == n0


def test_without_next_due_it_polls_at_a_fixed_rate(made: list[Monitor]) -> None:
    ticks: list[float] = []
    mon = Monitor(1, lambda s: ticks.append(time.monotonic()))
    made.append(mon)
    mon.start()
    t0 = time.monotonic()
    mon.watch("service:s")
    assert wait_for(lambda: len(ticks) >= 3, timeout=6)
    mon.shutdown()
    # fixed rate: the k-th tick at k seconds, lateness does not accumulate
    assert all(abs(t - t0 - (k + 1)) < 0.1 for k, t in enumerate(ticks)), \
        [t - t0 for t in ticks]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@settings(max_examples=60, deadline=None)
@given(shallow=st.integers(1, 90), deep=st.integers(1, 90), skip=st.booleans(),
       steps=st.lists(st.one_of(st.floats(0, 120), st.just(-1.0)), max_size=25))
def test_next_due_is_exactly_when_check_next_runs_something(
        tmp_path_factory: pytest.TempPathFactory, shallow: int, deep: int, skip: bool,
        steps: list[float]) -> None:
    """For any intervals and any clock: a pass runs something iff the clock
    has reached next_due (-1.0 in ``steps`` jumps exactly to next_due)."""
    top = services(tmp_path_factory.mktemp("c"), 1, shallow, deep)[0]
    ran: list[int] = []

    def runner(req: ActionRequest) -> ActionResult:
        ran.append(req.check_level)
        return ActionResult(0, 0, "", False, 0.0)

    clock = Clock()
    checker = StatusChecker(TreeOps(runner), clock)
    checker.reset(top.name)
    parts = {top.children[0].path} if skip else set()
    for step in steps:
        due = checker.next_due(top, parts)
        if skip:
            assert due is None
        if step < 0:
            if due is None:
                continue
            clock.t = due
        else:
            clock.t += step
        before = len(ran)
        checker.check(top, parts)
        assert (len(ran) > before) == (due is not None and clock.t >= due)
        if due is not None and clock.t >= due:
            assert checker.next_due(top, parts) > clock.t  # type: ignore[operator]


def test_a_restarted_monitor_resumes_every_watched_service(made: list[Monitor]) -> None:
    """shutdown drops turns still queued for a worker; start schedules them
    again (nothing stays marked as running for ever)."""
    gate, holding = threading.Event(), threading.Event()
    ticks: list[str] = []

    def tick(service: str) -> None:
        if service == "service:a":
            holding.set()
            gate.wait(10)
        ticks.append(service)

    now = time.monotonic()
    mon = Monitor(10, tick, next_due=lambda s: now, workers=1)
    made.append(mon)
    mon.start()
    mon.watch("service:a")
    mon.watch("service:b")  # queued behind a, which holds the only worker
    assert wait_for(lambda: holding.is_set() and mon.due("service:b") is None, timeout=5)
    mon.shutdown()
    gate.set()
    assert wait_for(lambda: "service:a" in ticks, timeout=5)
    assert "service:b" not in ticks
    mon.start()
    assert wait_for(lambda: "service:b" in ticks, timeout=5)
