"""The service container agent: lifecycle, idempotence, ocf-tester."""

from __future__ import annotations

from pathlib import Path

from rgmanager.agents.rules import parse_metadata

from .conftest import RunAgent, ocf_tester


def test_service_lifecycle(run_agent: RunAgent) -> None:
    assert run_agent("service", "status", name="web").rc == 7
    assert run_agent("service", "start", name="web").rc == 0
    assert run_agent("service", "start", name="web").rc == 0
    assert run_agent("service", "monitor", name="web").rc == 0
    assert run_agent("service", "stop", name="web").rc == 0
    assert run_agent("service", "stop", name="web").rc == 0
    assert run_agent("service", "status", name="web").rc == 7


def test_service_bad_boolean_is_not_configured(run_agent: RunAgent) -> None:
    r = run_agent("service", "validate-all", name="web", autostart="maybe")
    assert r.rc == 6
    assert "autostart" in r.stderr


def test_service_ocf_tester(rsctmp: Path) -> None:
    r = ocf_tester("service", {"name": "web"}, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout


POLICY = ("domain", "autostart", "exclusive", "recovery", "max_restarts", "restart_expire_time",
          "depend", "depend_mode", "priority")


def test_service_policy_attributes_are_reconfig(run_agent: RunAgent) -> None:
    """The meta-data the daemon loads marks the policy attributes reconfig="1" (a
    reload changing only them restarts nothing) and declares a reconfig action."""
    r = run_agent("service", "meta-data")
    assert r.rc == 0
    rule = parse_metadata(r.stdout, "service", "/")
    flagged = {p.name for p in rule.params if p.reconfig}
    assert flagged == set(POLICY)
    assert rule.has_action("reconfig")


def test_service_reconfig_is_a_noop(run_agent: RunAgent) -> None:
    assert run_agent("service", "start", name="web").rc == 0
    assert run_agent("service", "reconfig", name="web", recovery="relocate").rc == 0
    assert run_agent("service", "status", name="web").rc == 0
    assert run_agent("service", "stop", name="web").rc == 0
    assert run_agent("service", "reconfig", name="web").rc == 0
    assert run_agent("service", "status", name="web").rc == 7
