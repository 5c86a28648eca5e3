"""The service container agent: lifecycle, idempotence, ocf-tester."""

from __future__ import annotations

from pathlib import Path

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
