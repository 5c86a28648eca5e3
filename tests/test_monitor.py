"""Status scheduling: deepest due depth wins, intervals count from the start,
and a tick never overlaps another operation on the same service.

The runner here records requests instead of running agents: what is under
test is which check runs when, not what an agent does (that is covered by
the agent and manager tests).
"""

from __future__ import annotations

from pathlib import Path

from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import ActionRule, ParamRule, ResourceRule
from rgmanager.executor import ActionRequest, ActionResult
from rgmanager.loader import load
from rgmanager.monitor import StatusChecker
from rgmanager.treeops import TreeOps

from .conftest import HEADER

NAME = ParamRule("name", primary=True, unique=True, required=True)
RULES = RuleSet.from_rules([
    ResourceRule("service", "/x/service", "/x", (NAME,), (ActionRule("start", 5),)),
    ResourceRule("app", "/x/app", "/x", (NAME,), (
        ActionRule("start", 5), ActionRule("stop", 5),
        ActionRule("status", 5, 10, 0), ActionRule("status", 5, 60, 20))),
])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def setup(tmp_path: Path, fail: set[int] | None = None) -> tuple[StatusChecker, Clock, list[int]]:
    conf = tmp_path / "c.conf"
    conf.write_text(HEADER + '<rm><service name="s"><app name="a"/></service></rm></cluster>')
    top = load(conf, RULES).forest.services[0]
    depths: list[int] = []

    def runner(req: ActionRequest) -> ActionResult:
        depths.append(req.check_level)
        rc = 7 if fail and req.check_level in fail else 0
        return ActionResult(rc, rc, "", False, 0.0)

    clock = Clock()
    checker = StatusChecker(TreeOps(runner), clock)
    checker.reset(top.name)
    checker.top = top  # type: ignore[attr-defined]
    return checker, clock, depths


def test_deepest_due_depth_wins(tmp_path: Path) -> None:
    checker, clock, depths = setup(tmp_path)
    top = checker.top  # type: ignore[attr-defined]
    seen = []
    for t in range(0, 130, 5):
        clock.t = 1000.0 + t
        before = len(depths)
        assert checker.check(top, set()) is None
        seen.append((t, depths[before:]))
    ran = {t: d for t, d in seen if d}
    # nothing before one interval after the start; depth 0 every 10 s; at 60 s
    # and 120 s the deep check runs instead (and counts as the shallow one)
    assert ran[10] == [0] and ran[20] == [0] and ran[50] == [0]
    assert ran[60] == [20] and ran[120] == [20]
    assert 0 not in ran and 5 not in ran and 65 not in ran
    assert ran[70] == [0]


def test_failure_reports_the_resource_and_depth(tmp_path: Path) -> None:
    checker, clock, _ = setup(tmp_path, fail={20})
    top = checker.top  # type: ignore[attr-defined]
    clock.t += 10
    assert checker.check(top, set()) is None  # depth 0 passes
    clock.t += 50
    failure = checker.check(top, set())
    assert failure is not None and failure.node.name == "app:a" and failure.depth == 20


def test_forced_check_runs_deepest_now(tmp_path: Path) -> None:
    checker, _, depths = setup(tmp_path)
    checker.check(checker.top, set(), force=True)  # type: ignore[attr-defined]
    assert depths == [20]


def test_skipped_parts_are_not_checked(tmp_path: Path) -> None:
    checker, clock, depths = setup(tmp_path)
    top = checker.top  # type: ignore[attr-defined]
    clock.t += 10
    checker.check(top, {top.children[0].path})
    assert depths == []


def test_tick_skips_while_service_is_busy(tmp_path: Path) -> None:
    from rgmanager.cluster.local import LocalCluster
    from rgmanager.manager import Manager
    from rgmanager.state import ServiceState, State, Table

    conf = tmp_path / "c.conf"
    conf.write_text(HEADER + '<rm><service name="s"><app name="a"/></service></rm></cluster>')
    calls: list[str] = []

    def runner(req: ActionRequest) -> ActionResult:
        calls.append(req.action)
        return ActionResult(0, 0, "", False, 0.0)

    m = Manager(load(conf, RULES), LocalCluster("node1"), runner=runner, monitor=False)
    m.table = Table().put(ServiceState("service:s", State.STARTED, "node1"))
    m.running = True
    lock = m._service_lock("service:s")
    with lock:  # another operation (a stop, say) holds the service
        m.check_now("service:s")
    assert calls == []
    m.check_now("service:s")
    assert calls == ["status"]
